"""The helpers integration tests import from testbed.hosts, on a state file in a temp dir
(no root, no containers: subprocess.run is replaced where a command would run)."""
import json
import subprocess

import pytest

from testbed import config, hosts

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
