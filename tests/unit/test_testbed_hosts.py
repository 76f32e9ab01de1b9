"""The helpers integration tests import from testbed.hosts, on a state file in a temp dir
(no root, no containers: subprocess.run is replaced where a command would run)."""
import json
import subprocess

import pytest

from testbed import config, hosts, net

STATE = {"subnet": "198.51.100.0/24", "bridge": "198.51.100.254", "slaves": 1,
         "hosts": [{"name": "master1", "ip": "198.51.100.1", "nspawn_pid": None,
                    "leader_pid": None},
                   {"name": "slave1", "ip": "198.51.100.51", "nspawn_pid": None,
                    "leader_pid": None}]}


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "STATE_DIR", tmp_path)
    monkeypatch.setattr(config, "STATE_FILE", tmp_path / "state.json")
    monkeypatch.setattr(config, "KEY_FILE", tmp_path / "id_ed25519")
    return tmp_path


def test_load_state_none_when_down(state_dir):
    assert hosts.load_state() is None
    with pytest.raises(RuntimeError, match="not up"):
        hosts.host_ip("master1")


def test_host_ip_and_unknown_host(state_dir):
    (state_dir / "state.json").write_text(json.dumps(STATE))
    assert hosts.load_state()["subnet"] == "198.51.100.0/24"
    assert hosts.host_ip("slave1") == "198.51.100.51"
    with pytest.raises(KeyError):
        hosts.host_ip("slave9")


def test_ssh_uses_testbed_key_and_no_known_hosts(state_dir, mocker):
    (state_dir / "state.json").write_text(json.dumps(STATE))
    run = mocker.patch.object(subprocess, "run",
                              return_value=subprocess.CompletedProcess([], 0, "ok\n", ""))
    cp = hosts.ssh("master1", "echo 'a b'", timeout=7)
    assert cp.stdout == "ok\n"
    argv = run.call_args.args[0]
    assert argv[0] == "ssh" and argv[-2:] == ["root@198.51.100.1", "echo 'a b'"]
    assert argv[argv.index("-i") + 1] == str(state_dir / "id_ed25519")
    for opt in ("StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "LogLevel=ERROR"):
        assert opt in argv
    assert run.call_args.kwargs["timeout"] == 7


def test_stop_and_kill_of_a_stopped_host_only_record_it(state_dir, mocker):
    st = dict(STATE, hosts=[dict(h) for h in STATE["hosts"]])
    st["hosts"][1].update(nspawn_pid=999999999, leader_pid=1)  # no such process: not ours
    (state_dir / "state.json").write_text(json.dumps(st))
    kill = mocker.patch("os.kill")
    hosts.kill_host("slave1")
    hosts.stop_host("slave1")
    kill.assert_not_called()     # never signal a PID that is not that host's nspawn
    assert hosts.load_state()["hosts"][1]["nspawn_pid"] is None


def test_shared_settings_stay_until_the_last_instance_is_down(tmp_path, monkeypatch, mocker):
    """Two instances up; the sysctls and the nspawn tmpfs are given back by the second
    `down` only (proc files and the tmpfs are stand-ins in a temp dir)."""
    machine = tmp_path / "lib"
    proc = tmp_path / "proc"
    for key, value in (("net/ipv4/ip_forward", "0"), ("fs/inotify/max_user_instances", "128")):
        (proc / key).parent.mkdir(parents=True, exist_ok=True)
        (proc / key).write_text(value + "\n")
    monkeypatch.setattr(net, "_sysctl_path", lambda k: proc / k.replace(".", "/"))
    monkeypatch.setattr(config, "MACHINE_DIR", machine)
    monkeypatch.setattr(config, "SYSCTL_FILE", machine / "sysctl-saved.json")
    monkeypatch.setattr(config, "MACHINE_LOCK", machine / "machine.lock")
    monkeypatch.setattr(config, "NSPAWN_RUN", tmp_path / "nspawn")
    mount = mocker.patch.object(net, "run")
    umount = mocker.patch.object(subprocess, "run")

    def be(instance):
        monkeypatch.setattr(config, "STATE_FILE", config.Instance(instance).state_dir
                            / "state.json")

    def forward():
        return (proc / "net/ipv4/ip_forward").read_text().strip()

    for instance in ("", "t2"):           # what `up` does: state first, then the settings
        be(instance)
        config.STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
        config.STATE_FILE.write_text("{}")
        hosts._take_shared()
    assert mount.call_args.args[0][:3] == ["mount", "-t", "tmpfs"]
    assert forward() == "1"

    be("")
    assert hosts._leave_shared() == []
    assert not (machine / "state.json").exists()
    assert forward() == "1" and (proc / "fs/inotify/max_user_instances").read_text() == "8192\n"
    umount.assert_not_called()
    assert hosts._leave_shared() == []    # `down` twice: t2 is still up

    be("t2")
    gone = hosts._leave_shared()
    assert gone == [f"tmpfs {tmp_path / 'nspawn'}",
                    "sysctls net.ipv4.ip_forward=0, fs.inotify.max_user_instances=128"]
    umount.assert_called_once_with(["umount", str(tmp_path / "nspawn")], check=False)
    assert forward() == "0" and (proc / "fs/inotify/max_user_instances").read_text() == "128\n"
    assert hosts._state_files() == []
