"""runner, report, cli and playbooks without a network: Connections are fakes.

`FakeConn` answers the init-system probe and the gather script from recorded facts and records
everything else. `LocalConn` runs the real commands with this machine's `sh`, with /etc and
/var/lib/mesos-fab moved under a temporary root: a step's whole round trip, twice, for real.
No test opens a socket to anything but 127.0.0.1 (hosts.ini's 192.0.2.x never see a packet:
`fabric.Connection.open` is made to fail loudly in every test here).
"""

from __future__ import annotations

import base64
import io
import re
import subprocess
from pathlib import Path

import fabric
import pytest
from invoke import Config as InvokeConfig
from invoke import Context
from invoke.exceptions import Exit
from invoke.runners import Result

from tasks import cli, inventory, playbooks, report, shell
from tasks.runner import Change, Session, Step, StepError, run_step, run_steps
from tasks.steps import config, service

CASES = Path(__file__).parent / "cases"
TUTORIAL = CASES / "inventories" / "tutorial.ini"
GATHER_NAME = re.compile(r"printf '%s %s %s ' \S+ (\S+) ")


@pytest.fixture(autouse=True)
def no_ssh(mocker):
    """Any real connection attempt is a test failure."""
    return mocker.patch.object(fabric.Connection, "open",
                               side_effect=AssertionError("a real SSH connection was attempted"))


class FakeConn:
    def __init__(self, facts=None, init="upstart", user="root", apply_exit=0, apply_stderr="",
                 raise_on=None):
        self.facts = facts or {}
        self.init = init
        self.user = user
        self.apply_exit = apply_exit
        self.apply_stderr = apply_stderr
        self.raise_on = raise_on
        self.commands: list[tuple[str, str]] = []    # (run|sudo, command)
        self.closed = False

    def _answer(self, how, command, **kwargs):
        assert kwargs == {"hide": True, "warn": True, "in_stream": False}
        self.commands.append((how, command))
        if self.raise_on and self.raise_on in command:
            raise OSError("No route to host")
        if command == shell.init_system():
            return Result(stdout=f"{self.init}\n", exited=0)
        names = GATHER_NAME.findall(command)
        if names:
            lines = []
            for name in names:
                rc, out = self.facts[name]
                lines.append(f"@@probe {name} {rc} {base64.b64encode(out.encode()).decode()}")
            return Result(stdout="\n".join(lines) + "\n", exited=0)
        return Result(stdout="", stderr=self.apply_stderr, exited=self.apply_exit)

    def run(self, command, **kwargs):
        return self._answer("run", command, **kwargs)

    def sudo(self, command, **kwargs):
        return self._answer("sudo", command, **kwargs)

    def close(self):
        self.closed = True

    @property
    def applied(self) -> list[str]:
        return [c for _, c in self.commands if c != shell.init_system() and "@@probe" not in c]


@pytest.fixture
def cluster():
    return inventory.load(TUTORIAL)


@pytest.fixture
def out():
    return io.StringIO()


@pytest.fixture
def rep(out):
    return report.Reporter(stream=out)


ZOO_TRUSTY = {"dir": (0, ""), "file0": (0, "644 root root\ndataDir=/var/lib/zookeeper\n#server.1=zookeeper1:2888:3888\n")}


# --- run_step ---------------------------------------------------------------------------------

def test_run_step_applies_changes_in_one_script(cluster, rep, out):
    conn = FakeConn(ZOO_TRUSTY)
    session = Session(cluster.find("master2"), cluster, conn)
    assert run_step(session, config.WRITE_ZOO_CFG, rep, dry_run=False)
    assert out.getvalue() == "master2 write-zoo-cfg changed (write /etc/zookeeper/conf/zoo.cfg)\n"
    content = render_zoo(cluster)
    expected = shell.write_file("/etc/zookeeper/conf/zoo.cfg", content, restart=("zookeeper",))
    assert conn.applied == [f"( {expected}\n) || exit $?"]
    assert [how for how, _ in conn.commands] == ["run", "run", "run"]
    assert session.init == "upstart"


def render_zoo(cluster):
    from tasks import render
    return render.zoo_cfg(cluster.zoo_server_lines)


def test_run_step_ok_runs_no_change(cluster, rep, out):
    conn = FakeConn({"dir": (0, ""), "file0": (0, "644 root root\n1\n")})
    assert run_step(Session(cluster.find("master1"), cluster, conn), config.WRITE_MYID, rep, False)
    assert out.getvalue() == "master1 write-myid ok\n"
    assert conn.applied == []


def test_run_step_uses_sudo_for_a_non_root_login(cluster, rep):
    conn = FakeConn({"dir": (0, ""), "file0": (0, "644 root root\n1\n")}, user="ops")
    run_step(Session(cluster.find("master1"), cluster, conn), config.WRITE_MYID, rep, False)
    assert {how for how, _ in conn.commands} == {"sudo"}


def test_init_system_is_detected_once_per_session(cluster, rep):
    conn = FakeConn({"dir": (0, ""), "file0": (0, "644 root root\n1\n")}, init="systemd")
    session = Session(cluster.find("master1"), cluster, conn)
    run_step(session, config.WRITE_MYID, rep, False)
    run_step(session, config.WRITE_MYID, rep, False)
    assert [c for _, c in conn.commands].count(shell.init_system()) == 1


def test_dry_run_prints_a_diff_and_changes_nothing(cluster, rep, out):
    conn = FakeConn({"dir": (0, ""), "file0": (0, "644 root root\n1\n")})
    assert run_step(Session(cluster.find("master2"), cluster, conn), config.WRITE_MYID, rep, True)
    assert out.getvalue() == (
        "master2 write-myid would write /etc/zookeeper/conf/myid\n"
        "--- /etc/zookeeper/conf/myid\n"
        "+++ /etc/zookeeper/conf/myid\n"
        "@@ -1 +1 @@\n"
        "-1\n"
        "+2\n"
        "master2 write-myid changed (dry run: nothing was changed)\n")
    assert conn.applied == []


def test_dry_run_diff_of_a_new_file(cluster, rep, out):
    conn = FakeConn({"dir": (0, ""), "file0": (3, ""), "file1": (3, "")})
    run_step(Session(cluster.find("slave1"), cluster, conn), config.SET_IP_HOSTNAME, rep, True)
    text = out.getvalue()
    assert "--- /dev/null\n+++ /etc/mesos-slave/ip\n@@ -0,0 +1 @@\n+192.0.2.51\n" in text
    assert "slave1 set-ip-hostname would write /etc/mesos-slave/hostname\n" in text
    assert conn.applied == []


def test_dry_run_skips_checks(cluster, rep, out):
    conn = FakeConn()
    assert run_step(Session(cluster.find("master1"), cluster, conn), service.WAIT_ZOOKEEPER, rep, True)
    assert out.getvalue() == "master1 wait-zookeeper skipped (dry run)\n"
    assert conn.commands == []
    assert rep.counts == {}


def test_failed_apply_is_reported_with_host_step_and_error(cluster, rep, out):
    conn = FakeConn(ZOO_TRUSTY, apply_exit=1,
                    apply_stderr="mv: cannot move '.zoo.cfg.x': Read-only file system\n")
    session = Session(cluster.find("master2"), cluster, conn)
    assert not run_step(session, config.WRITE_ZOO_CFG, rep, False)
    assert out.getvalue() == ("master2 write-zoo-cfg failed: mv: cannot move '.zoo.cfg.x': "
                              "Read-only file system (exit 1)\n")
    assert rep.failures == [("master2", "write-zoo-cfg",
                             "mv: cannot move '.zoo.cfg.x': Read-only file system (exit 1)")]


def test_step_error_is_reported(cluster, rep, out):
    conn = FakeConn({"dir": (1, ""), "file0": (3, "")})
    assert not run_step(Session(cluster.find("master3"), cluster, conn), config.WRITE_MYID, rep, False)
    assert out.getvalue() == ("master3 write-myid failed: ZooKeeper is not installed on master3 "
                              "(/etc/zookeeper/conf is missing): run install-master first\n")


def test_unreachable_host(cluster, rep, out):
    conn = FakeConn(raise_on="initctl")
    assert not run_step(Session(cluster.find("slave2"), cluster, conn), config.WRITE_ZK, rep, False)
    assert out.getvalue() == "slave2 write-zk failed: cannot reach 192.0.2.52:22: No route to host\n"


def test_recap(rep, out):
    rep.step("master1", "write-zk", "ok")
    rep.step("master2", "write-zoo-cfg", "changed", "write /etc/zookeeper/conf/zoo.cfg")
    rep.step("slave1", "install-slave", "failed", "E: Unable to locate package mesos (exit 100)")
    rep.step("master1", "wait-zookeeper", "skipped", "dry run")
    assert rep.failures
    assert rep.recap() == "\n".join([
        "",
        "RECAP",
        "master1  ok=1   changed=0   failed=0",
        "master2  ok=0   changed=1   failed=0",
        "slave1   ok=0   changed=0   failed=1",
        "FAILED slave1 install-slave: E: Unable to locate package mesos (exit 100)",
    ])
    assert report.Reporter(stream=io.StringIO()).recap() == ""


def test_unified_diff_without_trailing_newline():
    assert report.unified_diff("/etc/mesos/zk", "zk://localhost:2181/mesos", "zk://a:2181/mesos\n") == (
        "--- /etc/mesos/zk\n+++ /etc/mesos/zk\n@@ -1 +1 @@\n-zk://localhost:2181/mesos\n"
        "\\ No newline at end of file\n+zk://a:2181/mesos\n")


# --- run_steps: hosts in parallel, each stops at its first failure ------------------------------

def fake_step(name, fail_on=(), changes=False):
    def probes(ctx):
        return {"p": "true"}

    def plan(ctx, found):
        if ctx.host.name in fail_on:
            raise StepError("broken here")
        return [Change(f"do {name}", f"echo {name}")] if changes else []
    return Step(name, ("master", "slave"), probes, plan)


def test_run_steps_stops_a_host_at_its_first_failure(cluster, rep, out):
    conns = {h.name: FakeConn({"p": (0, "")}) for h in cluster.masters}
    sessions = [Session(h, cluster, conns[h.name]) for h in cluster.masters]
    steps = [fake_step("one", changes=True), fake_step("two", fail_on=("master2",)),
             fake_step("three", changes=True)]
    assert not run_steps(sessions, steps, rep, dry_run=False)
    lines = sorted(out.getvalue().splitlines())
    assert lines == sorted([
        "master1 one changed (do one)", "master2 one changed (do one)", "master3 one changed (do one)",
        "master1 two ok", "master2 two failed: broken here", "master3 two ok",
        "master1 three changed (do three)", "master3 three changed (do three)",
    ])
    assert [s.failed for s in sessions] == [False, True, False]


# --- LocalConn: the real commands, run by sh under a temporary root ---------------------------

class LocalConn(FakeConn):
    """Runs every command with sh, /etc and the marker dir moved under `root`."""

    def __init__(self, root: Path):
        super().__init__(init="systemd")
        self.root = root

    def _answer(self, how, command, **kwargs):
        self.commands.append((how, command))
        if command == shell.init_system():
            return Result(stdout="systemd\n", exited=0)
        local = command.replace("/etc/", f"{self.root}/etc/").replace(
            "/var/lib/mesos-fab/", f"{self.root}/var/lib/mesos-fab/")
        p = subprocess.run(["sh", "-c", local], capture_output=True, text=True, timeout=60)
        return Result(stdout=p.stdout, stderr=p.stderr, exited=p.returncode)


@pytest.mark.skipif(__import__("os").geteuid() != 0, reason="write_file chowns to root")
def test_steps_for_real_under_a_temp_root_then_idempotent(cluster, tmp_path, out):
    for d in ("etc/mesos", "etc/zookeeper/conf", "etc/mesos-master"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "etc/mesos/zk").write_text("zk://localhost:2181/mesos\n")
    (tmp_path / "etc/zookeeper/conf/myid").write_text("replace this text\n")
    (tmp_path / "etc/mesos-master/quorum").write_text("1\n")
    steps = [config.WRITE_ZK, config.WRITE_MYID, config.WRITE_ZOO_CFG, config.SET_QUORUM,
             config.SET_IP_HOSTNAME]
    conn = LocalConn(tmp_path)
    session = Session(cluster.find("master3"), cluster, conn)
    rep = report.Reporter(stream=out)
    assert run_steps([session], steps, rep, dry_run=False), out.getvalue()
    assert rep.counts["master3"] == {"changed": 5}
    assert (tmp_path / "etc/mesos/zk").read_text() == cluster.mesos_zk_url + "\n"
    assert (tmp_path / "etc/zookeeper/conf/myid").read_text() == "3\n"
    assert (tmp_path / "etc/mesos-master/quorum").read_text() == "2\n"
    assert (tmp_path / "etc/mesos-master/ip").read_text() == "192.0.2.3\n"
    assert "server.3=192.0.2.3:2888:3888\n" in (tmp_path / "etc/zookeeper/conf/zoo.cfg").read_text()
    assert sorted(p.name for p in (tmp_path / "var/lib/mesos-fab/restart").iterdir()) == \
        ["marathon", "mesos-master", "zookeeper"]
    assert not [p for p in tmp_path.rglob(".*")], "no temporary file left"

    again = report.Reporter(stream=io.StringIO())
    assert run_steps([Session(cluster.find("master3"), cluster, LocalConn(tmp_path))], steps, again, False)
    assert again.counts["master3"] == {"ok": 5}, "a second run changes nothing"


# --- cli: hosts, roles and the inventory, before any connection -------------------------------

@pytest.fixture
def cli_reporter(monkeypatch, out):
    rep = report.Reporter(stream=out)
    monkeypatch.setattr(cli, "_reporter", rep)
    return rep


def connection(host: str, inventory_path) -> fabric.Connection:
    """What `fab -H host` hands a task: a Connection (lazy: creating it opens nothing)."""
    return fabric.Connection(host, config=fabric.Config(overrides={"inventory": str(inventory_path)}))


def test_cli_unknown_host(mocker, no_ssh, cli_reporter):
    connect = mocker.patch("tasks.cli.connect")
    with pytest.raises(Exit) as exc:
        cli.run_step(connection("master9", TUTORIAL), config.WRITE_ZK)
    assert exc.value.code == 2
    assert "host 'master9' is not in the inventory" in exc.value.message
    assert "master1 (192.0.2.1)" in exc.value.message
    connect.assert_not_called()
    no_ssh.assert_not_called()


def test_cli_slave_given_to_a_master_task(mocker, no_ssh, cli_reporter):
    connect = mocker.patch("tasks.cli.connect")
    with pytest.raises(Exit) as exc:
        cli.run_step(connection("slave1", TUTORIAL), config.WRITE_MYID)
    assert exc.value.code == 2
    assert exc.value.message == "slave1 is a slave; this task applies to masters"
    connect.assert_not_called()
    no_ssh.assert_not_called()


def test_cli_invalid_inventory_opens_no_connection(mocker, tmp_path, no_ssh, cli_reporter):
    bad = tmp_path / "hosts.ini"
    bad.write_text("[masters]\nmaster1 ip=192.0.2.1\n")
    created = mocker.patch("tasks.runner.Connection")
    init = mocker.spy(fabric.Connection, "__init__")
    with pytest.raises(Exit) as exc:
        cli.run_phases(Context(config=InvokeConfig(overrides={"inventory": str(bad)})),
                       playbooks.CLUSTER)
    assert exc.value.code == 2
    assert exc.value.message.startswith("invalid inventory, nothing was changed:\n")
    assert f"{bad}:2: master 'master1' has no myid" in exc.value.message
    created.assert_not_called()
    assert init.call_count == 0
    no_ssh.assert_not_called()


def test_cli_a_failed_master_stops_before_any_slave(mocker, cli_reporter, out):
    conns = {}

    def make(host, port, user, config, connect_timeout, connect_kwargs):
        assert (port, connect_timeout) == (22, 15)
        conns[host] = FakeConn({"p": (0, "")})
        return conns[host]
    mocker.patch("tasks.runner.Connection", side_effect=make)
    phases = [(("master",), [fake_step("m", fail_on=("master2",))]),
              (("slave",), [fake_step("s", changes=True)])]
    with pytest.raises(Exit) as exc:
        cli.run_phases(Context(config=InvokeConfig(overrides={"inventory": str(TUTORIAL)})), phases)
    assert exc.value.code == 1
    assert sorted(out.getvalue().splitlines()) == [
        "master1 m ok", "master2 m failed: broken here", "master3 m ok"]
    assert sorted(conns) == ["192.0.2.1", "192.0.2.2", "192.0.2.3",
                             "192.0.2.51", "192.0.2.52", "192.0.2.53"]
    assert all(c.commands == [] for h, c in conns.items() if h.startswith("192.0.2.5")), \
        "no slave was touched"
    assert all(c.closed for c in conns.values())


def test_cli_dry_run_over_the_cluster_changes_nothing(mocker, cli_reporter, out):
    conns = {}

    def make(host, **kwargs):
        conns[host] = FakeConn({"p": (0, "")})
        return conns[host]
    mocker.patch("tasks.runner.Connection", side_effect=make)
    cli.run_phases(Context(config=InvokeConfig(overrides={"inventory": str(TUTORIAL)})),
                   [(("master", "slave"), [fake_step("x", changes=True)])], dry_run=True)
    assert "slave3 x would do x\n" in out.getvalue()
    assert all(c.applied == [] for c in conns.values())
    assert cli_reporter.counts["slave3"] == {"changed": 1}


# --- playbooks: the tutorial's order ------------------------------------------------------------

def names(steps) -> list[str]:
    return [s.name for s in steps]


def test_master_playbook_is_the_tutorials_order():
    assert names(playbooks.MASTER) == [
        "add-repo", "install-master", "write-zk", "write-myid", "write-zoo-cfg", "set-quorum",
        "set-ip-hostname", "configure-marathon", "disable-unused-services", "start-services"]


def test_slave_playbook_is_the_tutorials_order():
    assert names(playbooks.SLAVE) == [
        "add-repo", "install-slave", "write-zk", "disable-unused-services", "set-ip-hostname",
        "start-services"]


def test_cluster_playbook_forms_the_ensemble_before_mesos():
    (master_roles, master_steps), (slave_roles, slave_steps) = playbooks.CLUSTER
    assert (master_roles, slave_roles) == (("master",), ("slave",))
    assert names(master_steps) == names(playbooks.MASTER[:-1]) + [
        "start-zookeeper", "wait-zookeeper", "start-mesos-master+marathon"]
    assert names(slave_steps) == names(playbooks.SLAVE)


def test_playbook_steps_apply_to_their_role():
    assert all("master" in s.roles for s in playbooks.MASTER)
    assert all("slave" in s.roles for s in playbooks.SLAVE)
