"""A run against real SSH (tests/unit/ssh_server.py: this machine's sh behind a real SSH
server): host keys checked before any command, a non-root login through sudo, the run lock,
interruptions, and `fab -H a,b,c`. The runs here are dry runs: their gather only reads this
machine's files, and nothing is applied."""

from __future__ import annotations

import io
import os
import signal
import threading
import time

import fabric
import paramiko
import pytest
from fabric.main import program
from invoke import Config as InvokeConfig
from invoke import Context
from invoke.exceptions import Exit

from tasks import cli, inventory, playbooks, report, runner, shell, ssh
from tasks.remote import Control, Remote, SshProcesses
from tasks.runner import LockRequest, RoundResult, Session, Stage, run
from tasks.step import Change
from tests.unit import test_remote
from tests.unit.ssh_server import with_fake_sudo
from tests.unit import gate_views
from tests.unit.test_runner import (TUTORIAL, Host, LocalProcesses, configured_host,
                                    local_session, order)

ORDER = playbooks.RESTART_ORDER


@pytest.fixture
def server(tmp_path, monkeypatch):
    srv = with_fake_sudo(tmp_path, monkeypatch, FAKE_SUDO_NOPASSWD="1")
    yield srv
    srv.close()


def one_master(server, tmp_path, known: str, extra: str = "") -> inventory.Cluster:
    (tmp_path / "known_hosts").write_text(known)
    path = tmp_path / "hosts.ini"
    path.write_text(f"[all:vars]\nssh_known_hosts = known_hosts\n{extra}\n[masters]\n"
                    f"master1 ip=192.0.2.1 myid=1 ssh_host=127.0.0.1 ssh_port={server.port}\n")
    return inventory.load(path)


def fabric_config() -> fabric.Config:
    return fabric.Config(overrides={"connect_kwargs": {"password": "x", "look_for_keys": False,
                                                       "allow_agent": False},
                                    "load_ssh_configs": False})


def session(cluster, password=None) -> Session:
    host = cluster.masters[0]
    return Session(host, cluster, runner.connect(host, fabric_config()), password=password)


def dry_run(sessions, lock=None, control=None) -> list[str]:
    out = io.StringIO()
    try:
        run(sessions, [Stage(("master",), (playbooks.MASTER[0],))], ORDER,
            report.Reporter(stream=out), dry_run=True, control=control, lock=lock)
    finally:
        for s in sessions:
            s.close()
    return out.getvalue().splitlines()


# --- host keys -------------------------------------------------------------------------------

def test_a_changed_host_key_is_refused_before_any_command(server, tmp_path):
    other = paramiko.ECDSAKey.generate()
    known = f"[127.0.0.1]:{server.port} {other.get_name()} {other.get_base64()}\n"
    cluster = one_master(server, tmp_path, known, "ssh_host_key_policy = accept-new")
    [line] = dry_run([session(cluster)])
    assert line.startswith(f"master1 add-repo failed: HOST KEY CHANGED for [127.0.0.1]:"
                           f"{server.port}: known {other.get_name()} {ssh.fingerprint(other)}, "
                           f"offered {server.key.get_name()} {ssh.fingerprint(server.key)}")
    assert server.commands == [] and server.users == []


def test_an_unknown_host_key_is_refused_saying_how_to_accept_it(server, tmp_path):
    cluster = one_master(server, tmp_path, "")
    [line] = dry_run([session(cluster)])
    assert f"unknown host key for [127.0.0.1]:{server.port}" in line
    assert f"ssh-keyscan -t {server.key.get_name()} -p {server.port} 127.0.0.1 >> " \
           f"{tmp_path / 'known_hosts'}" in line
    assert server.commands == []


def test_accept_new_records_the_key_in_the_inventorys_known_hosts(server, tmp_path):
    cluster = one_master(server, tmp_path, "", "ssh_host_key_policy = accept-new")
    lines = dry_run([session(cluster)])
    assert lines[-1].startswith("master1 add-repo "), lines
    assert "failed" not in lines[-1]
    assert (tmp_path / "known_hosts").read_text() == server.known_hosts_line()


# --- a non-root login ------------------------------------------------------------------------

def test_a_non_root_login_runs_everything_whole_through_sudo(server, tmp_path):
    cluster = one_master(server, tmp_path, server.known_hosts_line(), "ssh_user = ops")
    lines = dry_run([session(cluster)], lock=LockRequest("fab pid 1"))
    assert "failed" not in lines[-1], lines
    assert server.users == ["ops"]
    # The lock's holder, which runs the gather's supervisor: whole under sudo, nothing else
    # on a command line.
    [command] = server.commands
    assert command.startswith("sudo -n -- sh -c ")
    assert "flock" in command and "@@ready" in command


def test_a_sudo_password_is_used_only_at_sudos_prompt(server, tmp_path):
    del server.env["FAKE_SUDO_NOPASSWD"]
    server.env["FAKE_SUDO_PASSWORD"] = "pw-123"
    cluster = one_master(server, tmp_path, server.known_hosts_line(), "ssh_user = ops")
    lines = dry_run([session(cluster, password="pw-123")], lock=LockRequest("fab pid 1"))
    assert "failed" not in lines[-1], lines
    assert all(c.startswith(f"sudo -S -p '{shell.SUDO_PROMPT}' -- sh -c ") for c in server.commands)
    assert not any("pw-123" in c for c in server.commands)


# --- the run lock ----------------------------------------------------------------------------

def hold(server, tmp_path, holder: str):
    conn = test_remote.connect(server, tmp_path)
    _, process = Remote(SshProcesses(conn), "root", "master1").run_holding_lock(
        holder, False, [], Control(), None)
    return conn, process


def test_a_second_run_fails_at_once_naming_the_holder(server, tmp_path):
    cluster = one_master(server, tmp_path, server.known_hosts_line())
    conn, holder = hold(server, tmp_path, "fab pid 4242 on opsbox (user ops), started 2024-05-01 "
                                          "12:00:03 UTC")
    started = time.monotonic()
    [line] = dry_run([session(cluster)], lock=LockRequest("fab pid 2"))
    assert time.monotonic() - started < 5
    assert line.startswith(f"master1 add-repo failed: another run holds the lock {shell.RUN_LOCK}: "
                           "fab pid 4242 on opsbox (user ops), started 2024-05-01 12:00:03 UTC "
                           "(pid ")
    assert line.endswith("it has to end first (or give --wait-lock to wait for it)")
    holder.close()
    conn.close()


def test_wait_lock_runs_once_the_holder_is_done(server, tmp_path, capsys):
    cluster = one_master(server, tmp_path, server.known_hosts_line())
    conn, holder = hold(server, tmp_path, "fab pid 4242")
    release = threading.Timer(1.5, holder.close)
    release.start()
    started = time.monotonic()
    lines = dry_run([session(cluster)], lock=LockRequest("fab pid 2", wait=True))
    release.join()
    conn.close()
    assert time.monotonic() - started >= 1.4
    assert "failed" not in lines[-1], lines
    assert "master1: waiting for the run lock, held by fab pid 4242 (pid " in capsys.readouterr().out


def test_a_stop_while_waiting_for_the_lock_interrupts_the_host(server, tmp_path):
    cluster = one_master(server, tmp_path, server.known_hosts_line())
    conn, holder = hold(server, tmp_path, "fab pid 4242")
    control = Control()
    threading.Timer(0.5, control.request_stop).start()
    [line] = [l for l in dry_run([session(cluster)], lock=LockRequest("fab pid 2", wait=True),
                                 control=control) if "add-repo" in l]
    holder.close()
    conn.close()
    assert line == "master1 add-repo interrupted: not started: the run was interrupted"


# --- interruptions ---------------------------------------------------------------------------

def test_no_round_starts_on_any_host_once_the_run_is_stopped():
    """The signal arrives while master1 runs its first round: that round completes, and
    nothing else starts on any host (no roll, no gate, no slave); each host says where it
    stopped. The hosts answer as the supervisor does (tests/unit/test_remote.py proves it)."""
    cluster, out, control = inventory.load(TUTORIAL), io.StringIO(), Control()
    world = gate_views.World(cluster, gate_views.everywhere(cluster))
    signalled = threading.Event()

    class Signalled(Host):
        def run_round(self, changes, gather=()):
            if not changes:
                return super().run_round(changes, gather)
            if self.host.name == "master1":
                control.request_stop()
                signalled.set()
                return super().run_round(changes, gather)
            signalled.wait(5)
            self.trips.append(([c.summary for c in changes], list(gather)))
            return RoundResult(0, interrupted=runner.NOT_STARTED)

    facts = {h.name: configured_host(cluster, h.name) for h in cluster.hosts}
    for name in ("master1", "master2", "master3"):
        facts[name]["file:/etc/mesos/zk"] = None          # a write, and restarts it owes
    sessions = [Signalled(cluster.find(n), cluster, f, world=world) for n, f in facts.items()]
    run(sessions, list(playbooks.CLUSTER), order(world), report.Reporter(stream=out), False,
        control=control)
    trips = {s.host.name: s.trips for s in sessions}
    assert trips["master1"][1][0] == ["write /etc/mesos/zk"]
    assert len(trips["master1"]) == 2, "the gather, and the round that was running"
    # The others were stopped before their round, or (had it started already) at its start.
    assert len(trips["master2"]) <= 2 and len(trips["master3"]) <= 2
    for s in ("slave1", "slave2", "slave3"):
        assert len(trips[s]) == 1, "the slaves were only gathered"
    assert world.log == [], "nothing was restarted"
    lines = out.getvalue().splitlines()
    assert "master1 write-zk changed (write /etc/mesos/zk)" in lines
    assert ("master1 start-services interrupted: stopped before `restart mesos-master "
            "(marked for a restart)` (the run was interrupted)") in lines
    assert ("master2 write-zk interrupted: stopped before `write /etc/mesos/zk` "
            "(the run was interrupted)") in lines
    assert "slave1 add-repo interrupted: not started: the run was interrupted" in lines
    assert all(s.interrupted for s in sessions)


def test_a_stop_ends_a_wait_for_a_gate_and_nothing_is_restarted():
    """A roll waits for mesos-master to be able to spare master1 (the other masters do not
    serve); the stop ends the wait at once, the restart never happens."""
    cluster, out, control = inventory.load(TUTORIAL), io.StringIO(), Control()
    world = gate_views.World(cluster, {**gate_views.everywhere(cluster),
                                       "mesos-master": {"master1"}})
    master = configured_host(cluster, "master1")
    master["restart-marks"] = frozenset({"mesos-master"})
    sessions = [Host(cluster.find("master1"), cluster, master, world=world)]
    threading.Timer(0.5, control.request_stop).start()
    started = time.monotonic()
    run(sessions, [Stage(("master",), playbooks.MASTER)], order(world),
        report.Reporter(stream=out), False, control=control)
    assert time.monotonic() - started < 5, "the gate's wait ended with the stop"
    assert world.log == []
    assert ("master1 start-services interrupted: stopped before `restart mesos-master (marked "
            "for a restart)` (the run was interrupted)") in out.getvalue().splitlines()


@pytest.mark.skipif(os.geteuid() != 0, reason="write_file chowns to root")
def test_a_stop_during_a_round_lets_the_running_change_end_and_starts_no_other(tmp_path):
    """The real supervisor: a slow write is under way when the stop comes; it completes, and
    the next write never starts."""
    cluster = inventory.load(TUTORIAL)
    for d in ("etc/mesos", "etc/mesos-master"):
        (tmp_path / d).mkdir(parents=True)
    processes = LocalProcesses(tmp_path)
    s = local_session(cluster, "master1", processes)
    control = Control()
    slow = shell.write_file("/etc/mesos/zk", "zk://x/mesos\n")
    changes = [Change("write zk", f"sleep 1; {slow}"),
               Change("write quorum", shell.write_file("/etc/mesos-master/quorum", "2\n"))]
    s.control = control
    threading.Timer(0.5, control.request_stop).start()
    result = s.run_round(changes)
    assert result.applied == 1 and result.interrupted.startswith("not started")
    assert (tmp_path / "etc/mesos/zk").read_text() == "zk://x/mesos\n"
    assert not (tmp_path / "etc/mesos-master/quorum").exists()


def test_signals_stop_then_cut_the_run():
    control = Control()
    with cli.interrupts(control):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert control.stop.is_set() and not control.cut.is_set()
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert control.cut.is_set()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_an_interrupted_run_exits_130(mocker, monkeypatch):
    def interrupted(sessions, stages, order, reporter, dry_run, batch, control, lock):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        for s in sessions:
            s.failed = s.interrupted = True
    mocker.patch.object(runner, "run", side_effect=interrupted)
    mocker.patch.object(Session, "close")
    monkeypatch.setattr(cli, "_reporter", report.Reporter(stream=io.StringIO()))
    with pytest.raises(Exit) as exc:
        cli.run_stages(Context(config=InvokeConfig(overrides={"inventory": str(TUTORIAL)})), playbooks.CLUSTER)
    assert exc.value.code == 130
    assert exc.value.message.startswith("interrupted: ")


# --- fab -H a,b,c ----------------------------------------------------------------------------

def test_fab_dash_h_runs_the_hosts_together_once(mocker, monkeypatch):
    """Fabric calls the task once per -H host; the first call runs them all (in parallel,
    carrying on past a failed one, as without -H), the others do nothing."""
    calls = []

    def fake_run(sessions, stages, order, reporter, dry_run, batch, control, lock):
        calls.append(sorted(s.host.name for s in sessions))
        sessions[0].failed = True
    mocker.patch.object(runner, "run", side_effect=fake_run)
    mocker.patch.object(Session, "close")
    monkeypatch.setattr(cli, "_reporter", report.Reporter(stream=io.StringIO()))
    monkeypatch.setenv("FABRIC_INVENTORY", str(TUTORIAL))
    monkeypatch.setattr(cli, "_ran", set())
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with pytest.raises(SystemExit) as exc:
        program.run(["fab", "-r", root, "-H", "master1,slave2,master3", "write-zk"])
    assert exc.value.code == 1
    assert calls == [["master1", "master3", "slave2"]]
