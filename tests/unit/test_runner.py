"""The engine without a network: runner, plan, report, cli and playbooks.

`Host` stands for a host as the runner sees it: each call of `run_round` is one round trip,
answered from the host's facts, which the applied changes update as the real host would be
(`after`); its (re)starts update the `World` the gates read (`tests/unit/gate_views.py`).
`LocalProcesses` runs the real scripts, under the real supervisor, with this machine's `sh`,
/etc and /var/lib/mesos-fab moved under a temporary root: the real gather and apply, twice. No
test opens a socket to anything (`fabric.Connection.open` and every real gate read fail loudly
in every test here; tests/unit/test_remote.py runs the same scripts over real SSH).
"""

from __future__ import annotations

import io
import json
import os
import re
import select
import subprocess
import time
from pathlib import Path

import fabric
import pytest
from invoke import Config as InvokeConfig
from invoke import Context
from invoke.exceptions import Exit
from invoke.runners import Result

from tasks import cli, facts, gates, inventory, plan, playbooks, progress, report, runner
from tasks.facts import File, Service
from tasks.remote import Control, Remote
from tasks.runner import RoundResult, Session, Stage, run
from tasks.steps import config, install, service
from tests.unit import gate_views, test_steps

CASES = Path(__file__).parent / "cases"
TUTORIAL = CASES / "inventories" / "tutorial.ini"


@pytest.fixture(autouse=True)
def no_ssh(mocker):
    """Any real connection attempt is a test failure."""
    return mocker.patch.object(fabric.Connection, "open",
                               side_effect=AssertionError("a real SSH connection was attempted"))


@pytest.fixture(autouse=True)
def no_gate_reads(mocker):
    """The tutorial's addresses are not this machine's to probe: only scripted gates read."""
    for gate in (gates.ZooKeeper, gates.ZooKeeperStarts, gates.MesosMaster, gates.Marathon,
                 gates.Agents, gates.MarathonEverywhere):
        mocker.patch.object(gate, "observe", side_effect=AssertionError("a real gate read"))
    mocker.patch.object(runner, "GATE_POLL", 0.01)


@pytest.fixture
def world(cluster):
    """A new cluster: nothing serves yet (ZooKeeper runs standalone)."""
    return gate_views.World(cluster)


@pytest.fixture
def live(cluster):
    """A live cluster: every service serves everywhere."""
    return gate_views.World(cluster, gate_views.everywhere(cluster))


def order(world) -> tuple:
    return gate_views.order(world.script)


def _no_read(service, cluster, hosts):
    raise AssertionError(f"the gate of {service} was read, but nothing restarts it")


UNGATED = gate_views.order(_no_read)    # for the runs that restart nothing


class Host(Session):
    """A session whose round trips are answered from `facts`; `after` maps a change's
    summary to the facts it leaves on the host; `fail_on` makes that change fail; each
    applied "start X" or "restart X" (and "stop X, ...") is told to `world`."""

    def __init__(self, host, cluster, host_facts, after=None, fail_on=None, world=None):
        super().__init__(host, cluster, conn=None)
        self.facts = dict(host_facts)
        self.after = after or {}
        self.fail_on = fail_on
        self.world = world
        self.trips: list[tuple[list[str], list[str]]] = []    # (changes, gathered), per round trip

    def open(self, lock, gather):
        return self.run_round([], gather)

    def run_round(self, changes, gather=()):
        self.trips.append(([c.summary for c in changes], list(gather)))
        for i, change in enumerate(changes):
            if change.summary == self.fail_on:
                return RoundResult(i, "E: something broke (exit 100)")
            self.facts.update(self.after.get(change.summary, {}))
            started = re.match(r"(?:re)?start (\S+)", change.summary)
            if started and self.world is not None:
                self.world.restarted(self.host.name, started.group(1))
            stopped = re.match(r"stop (\S+),", change.summary)
            if stopped and self.world is not None:
                self.world.stopped(self.host.name, stopped.group(1))
        return RoundResult(len(changes), gathered={n: self.facts[n] for n in gather})


@pytest.fixture
def cluster():
    return inventory.load(TUTORIAL)


@pytest.fixture
def out():
    return io.StringIO()


@pytest.fixture
def rep(out):
    return report.Reporter(stream=out)


KEY = "81026D0004C44CF7EF55ADF8DF7D54CBE56151BF"


def installed_host(cluster, name: str) -> dict:
    """Facts of a host with its packages installed and running, nothing of ours written."""
    host = cluster.find(name)
    ctx = plan.HostContext(host, cluster)
    steps = playbooks.MASTER if host.role == "master" else playbooks.SLAVE
    values = {}
    for n in plan.needs(ctx, list(steps)):
        kind = facts.kind_of(n)
        values[n] = {
            facts.INIT: "systemd", facts.LSB_RELEASE: ("Debian", "bookworm"),
            facts.APT_SIGNED_BY: True, "keyring": frozenset({KEY}), facts.APT_KEY: frozenset(),
            "file": None, "dir": True, "package": "1.4.1-2.0.1", "candidate": "",
            "service": Service(True, True), facts.RESTART_MARKS: frozenset(),
            facts.DPKG_INTERRUPTED: False}[kind]
    values[facts.service("mesos-slave" if host.role == "master" else "zookeeper")] = None
    if host.role == "slave":
        values[facts.service("mesos-master")] = None
    return values


def configured_host(cluster, name: str) -> dict:
    """The facts of `installed_host` as `fab cluster` leaves them: planned, then applied."""
    host = cluster.find(name)
    ctx = plan.HostContext(host, cluster)
    snapshot = facts.Snapshot(installed_host(cluster, name))
    steps = playbooks.MASTER if host.role == "master" else playbooks.SLAVE
    result = plan.plan_host(ctx, list(steps), snapshot)
    assert result.failed is None and result.blocked is None
    return snapshot.values


def hosts(cluster, host_facts: dict, world=None, **kwargs) -> list[Host]:
    return [Host(cluster.find(n), cluster, f, world=world, **kwargs.get(n, {}))
            for n, f in host_facts.items()]


def step_lines(out) -> list[str]:
    return out.getvalue().splitlines()


# --- one round trip per host when nothing changes ----------------------------------------------

def test_a_converged_cluster_costs_one_round_trip_per_host(cluster, rep, out, live):
    sessions = hosts(cluster, {h.name: configured_host(cluster, h.name) for h in cluster.hosts})
    gates_ = order(live)
    run(sessions, list(playbooks.CLUSTER), gates_, rep, dry_run=False)
    for s in sessions:
        assert len(s.trips) == 1 and s.trips[0][0] == [], s.host.name
        assert s.trips[0][1] == plan.needs(s.ctx, list(
            playbooks.MASTER if s.host.role == "master" else playbooks.SLAVE))
    assert rep.counts["master1"] == {"ok": 11} and rep.counts["slave3"] == {"ok": 6}
    assert not any(g.gate.reads for g in gates_), "nothing restarted: no gate is read"


# --- the exact dry run -----------------------------------------------------------------------

def changes_of_run(sessions_factory, stages, dry_run, world) -> list[tuple[str, str, str]]:
    rep = report.Reporter(stream=io.StringIO())
    run(sessions_factory(), list(stages), order(world), rep, dry_run)
    return rep.changes


@pytest.mark.parametrize("path", test_steps.case_files(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_dry_run_lists_the_changes_the_real_run_reports(path):
    case = json.loads(path.read_text())
    cluster = inventory.load(CASES / "inventories" / case["inventory"])
    step = test_steps.STEPS[path.parent.name]
    values = {n: test_steps.fact_value(n, v) for n, v in case["facts"].items()}

    def world():
        serving = gate_views.everywhere(cluster)
        return gate_views.World(cluster, {s: serving[s] for s in case.get("serving", ())})

    def sessions(world):
        return lambda: [Host(cluster.find(case["host"]), cluster, values, world=world)]
    dry = changes_of_run(sessions(None), playbooks.step_stages(step), True, world())
    live = world()
    real = changes_of_run(sessions(live), playbooks.step_stages(step), False, live)
    assert dry == real
    # The report goes step by step (a gate before its step), the case in the order applied.
    assert sorted(summary for _, _, summary in real) == \
        sorted(c["summary"] for c in case.get("changes", []))


def test_a_dry_run_never_shows_a_secret_but_shows_that_it_changes(cluster, rep, out):
    """The operator's MARATHON_HTTP_CREDENTIALS in /etc/default/marathon (Marathon 1.6): the
    diff shows the line, with its value masked, and the tool's block that is added."""
    master = configured_host(cluster, "master1")
    master[facts.package("marathon")] = "1.6.322-2.0.145.debian90"
    master[facts.file("/etc/default/marathon")] = File(
        "MARATHON_HTTP_CREDENTIALS=ops:s3cret-value\nMARATHON_SSL_KEYSTORE_PASSWORD=k3y-pass\n")
    run(hosts(cluster, {"master1": master}), [Stage(("master",), (config.CONFIGURE_MARATHON,))],
        UNGATED, rep, dry_run=True)
    text = out.getvalue()
    assert "s3cret" not in text and "k3y-pass" not in text
    assert " MARATHON_HTTP_CREDENTIALS=(secret, not shown)\n" in text
    assert " MARATHON_SSL_KEYSTORE_PASSWORD=(secret, not shown)\n" in text
    assert "+MARATHON_HOSTNAME=192.0.2.1\n" in text


def test_drifted_zoo_cfg_dry_run_shows_the_diff_the_restart_and_its_gate(cluster, rep, out):
    drifted = configured_host(cluster, "master2")
    zoo = facts.file("/etc/zookeeper/conf/zoo.cfg")
    drifted[zoo] = File(drifted[zoo].content.replace("server.3=", "server.9="))
    host_facts = {"master1": configured_host(cluster, "master1"), "master2": drifted}

    def sessions():
        return hosts(cluster, host_facts, world=gate_views.World(cluster, gate_views.everywhere(cluster)))
    stages = [Stage(("master",), playbooks.MASTER)]
    run(sessions(), stages, order(gate_views.World(cluster, gate_views.everywhere(cluster))),
        rep, dry_run=True)
    text = out.getvalue()
    assert "\n\n" not in text, "no blank lines for steps without changes"
    assert "master2 write-zoo-cfg would write /etc/zookeeper/conf/zoo.cfg\n" in text
    assert "-server.9=192.0.2.3:2888:3888\n+server.3=192.0.2.3:2888:3888\n" in text
    assert "master2 start-services would restart zookeeper (marked for a restart)\n" in text
    assert ("rolling restart of zookeeper, one host at a time, the leader last: master2; "
            "before each, zookeeper must be able to spare it, after each, wait-zookeeper "
            "(up to 120 s)\n") in text
    live = gate_views.World(cluster, gate_views.everywhere(cluster))
    wait = ("wait until ZooKeeper on master2 leader or follower again, and the leader's "
            "zk_synced_followers = 2")
    assert rep.changes == changes_of_run(sessions, stages, False, live) == [
        ("master2", "write-zoo-cfg", "write /etc/zookeeper/conf/zoo.cfg"),
        ("master2", "start-services", "restart zookeeper (marked for a restart)"),
        ("master2", "start-services", "clear the restart mark of zookeeper"),
        ("master2", "wait-zookeeper", wait),
    ]


def test_the_real_run_applies_a_drift_in_one_round_trip(cluster, rep, out, world):
    """Where ZooKeeper does not serve (a new cluster), nothing is waited for before its
    restart: the write and the restart go in one script."""
    drifted = configured_host(cluster, "master2")
    drifted[facts.file("/etc/zookeeper/conf/zoo.cfg")] = File("dataDir=/tmp\n")
    [master2] = hosts(cluster, {"master2": drifted}, world)
    run([master2], [Stage(("master",), playbooks.MASTER)], order(world), rep, dry_run=False)
    assert [changes for changes, _ in master2.trips] == [[], [
        "write /etc/zookeeper/conf/zoo.cfg", "restart zookeeper (marked for a restart)",
        "clear the restart mark of zookeeper", "check that zookeeper stayed up"]]
    assert "master2 start-services changed (restart zookeeper (marked for a restart); " \
        "clear the restart mark of zookeeper; check that zookeeper stayed up)\n" in out.getvalue()


# --- facts that a change makes unknowable ------------------------------------------------------

def fresh_master(cluster) -> tuple[dict, dict]:
    """A master where the packages are not installed yet; what add-repo and the install leave."""
    installed = installed_host(cluster, "master1")
    fresh = dict(installed)
    for name in fresh:
        kind = facts.kind_of(name)
        if kind in ("package", "dir", "service", "keyring"):
            fresh[name] = {"package": None, "dir": False, "service": None,
                           "keyring": frozenset()}[kind]
        if kind == "candidate":
            fresh[name] = ""
    fresh[facts.file(install.SOURCES_FILE)] = None
    after = {
        "apt-get update": {facts.candidate("mesosphere"): "1.4.1"},
        "install mesosphere": {**{n: v for n, v in installed.items()
                                  if facts.kind_of(n) in ("package", "dir", "service")},
                               facts.package("marathon"): "1.4.1-1.0.660.debian90"},
    }
    return fresh, after


def test_after_an_install_the_facts_it_changes_are_gathered_again(cluster, rep, out, world):
    fresh, after = fresh_master(cluster)
    [master] = hosts(cluster, {"master1": fresh}, world, master1={"after": after})
    run([master], [Stage(("master",), playbooks.MASTER)], order(world), rep, dry_run=False)
    trips = master.trips
    assert trips[1][0] == [f"install key {KEY} into /etc/apt/keyrings/mesosphere.gpg",
                           "write /etc/apt/sources.list.d/mesosphere.list", "apt-get update"]
    assert trips[1][1] == [facts.candidate("mesosphere")], "only what the update made unknowable"
    assert trips[2][0] == ["install mesosphere"]
    assert facts.package("marathon") in trips[2][1] and facts.directory("/etc/mesos") in trips[2][1]
    assert facts.INIT not in trips[2][1] and facts.RESTART_MARKS not in trips[2][1]
    assert "write /etc/marathon/conf/zk" in trips[3][0], "Marathon 1.4, read after the install"
    assert trips[3][0][-3:] == ["restart zookeeper (marked for a restart)",
                                "clear the restart mark of zookeeper", "check that zookeeper stayed up"]
    assert trips[4][0][0] == "restart mesos-master (marked for a restart)", \
        "after a barrier; no wait for ZooKeeper: one master of three cannot form the ensemble"
    assert len(trips) == 5
    assert rep.counts["master1"] == {"changed": 9, "ok": 2}, "disable-unused-services, set-framework-auth"


def test_a_dry_run_says_which_steps_it_cannot_plan(cluster, rep, out, world):
    fresh, _ = fresh_master(cluster)
    [master] = hosts(cluster, {"master1": fresh})
    run([master], [Stage(("master",), playbooks.MASTER)], order(world), rep, dry_run=True)
    lines = step_lines(out)
    assert "master1 add-repo changed (dry run: nothing was changed)" in lines
    assert ("master1 install-master skipped (dry run: candidate:mesosphere is unknown until "
            "`apt-get update` is applied)") in lines
    assert "master1 write-zk skipped (dry run: planned once install-master is)" in lines
    assert len(master.trips) == 1


# --- the order across hosts ------------------------------------------------------------------

def marked_masters(cluster, marks=("zookeeper", "mesos-master")) -> dict:
    host_facts = {}
    for m in cluster.masters:
        f = configured_host(cluster, m.name)
        f[facts.RESTART_MARKS] = frozenset(marks)
        host_facts[m.name] = f
    return host_facts


def test_a_new_cluster_starts_zookeeper_everywhere_then_waits_for_it(cluster, rep, out, world):
    """Nothing serves yet: no roll. ZooKeeper restarts on every master at once, then the run
    waits (from here) until each serves, then mesos-master restarts."""
    sessions = hosts(cluster, marked_masters(cluster), world)
    run(sessions, [Stage(("master",), playbooks.MASTER)], order(world), rep, dry_run=False)
    for s in sessions:
        assert [changes for changes, _ in s.trips] == [[], [
            "restart zookeeper (marked for a restart)", "clear the restart mark of zookeeper",
            "check that zookeeper stayed up"], [
            "restart mesos-master (marked for a restart)",
            "clear the restart mark of mesos-master", "check that mesos-master stayed up"]]
    assert sorted(world.log[:3]) == [(m, "zookeeper") for m in ("master1", "master2", "master3")]
    assert sorted(world.log[3:]) == [(m, "mesos-master") for m in ("master1", "master2", "master3")]
    lines = step_lines(out)
    assert lines.index("master1 wait-zookeeper ok") > lines.index(
        "master1 start-services changed (restart zookeeper (marked for a restart); clear the "
        "restart mark of zookeeper; check that zookeeper stayed up; restart mesos-master "
        "(marked for a restart); clear the restart mark of mesos-master; check that "
        "mesos-master stayed up)"), "a step is reported once all its changes are applied"


def test_one_master_of_three_does_not_wait_for_an_ensemble_it_cannot_form(cluster, rep, world):
    """The runbook's way, one host at a time: the other masters still run the packages'
    standalone ZooKeeper, so waiting for a quorum on master1 alone would only time out."""
    [master1] = hosts(cluster, {"master1": marked_masters(cluster)["master1"]}, world)
    run([master1], [Stage(("master",), (service.START_SERVICES,))], order(world), rep,
        dry_run=False)
    assert [changes for changes, _ in master1.trips][1:] == [
        ["restart zookeeper (marked for a restart)", "clear the restart mark of zookeeper",
         "check that zookeeper stayed up"],
        ["restart mesos-master (marked for a restart)", "clear the restart mark of mesos-master",
         "check that mesos-master stayed up"]]


def test_a_failed_master_stops_the_run_before_any_slave_is_changed(cluster, rep, out, live):
    host_facts = {h.name: configured_host(cluster, h.name) for h in cluster.hosts}
    for name in ("master2", "slave1"):
        host_facts[name][facts.file("/etc/mesos/zk")] = None
    sessions = hosts(cluster, host_facts, live, master2={"fail_on": "write /etc/mesos/zk"})
    run(sessions, list(playbooks.CLUSTER), order(live), rep, dry_run=False)
    assert "master2 write-zk failed: E: something broke (exit 100)" in step_lines(out)
    assert rep.counts["master1"] == {"ok": 11}
    assert "master2 write-myid" not in out.getvalue(), "a host stops at its first failure"
    for s in sessions:
        if s.host.role == "slave":
            assert [changes for changes, _ in s.trips] == [[]], "facts read, nothing changed"
            assert s.host.name not in rep.counts


def test_the_steps_before_a_failure_are_reported_with_what_they_changed(cluster, rep, out):
    f = configured_host(cluster, "slave2")
    f[facts.file("/etc/mesos/zk")] = File("zk://localhost:2181/mesos\n")
    f[facts.file("/etc/mesos-slave/ip")] = None
    live = gate_views.World(cluster, gate_views.everywhere(cluster))
    [slave2] = hosts(cluster, {"slave2": f}, live,
                     slave2={"fail_on": "write /etc/mesos-slave/ip"})
    run([slave2], [Stage(("slave",), playbooks.SLAVE)], order(live), rep, dry_run=False)
    assert step_lines(out) == [
        "slave2 add-repo ok", "slave2 install-slave ok",
        "slave2 write-zk changed (write /etc/mesos/zk)", "slave2 disable-unused-services ok",
        "slave2 set-ip-hostname failed: E: something broke (exit 100)"]
    assert slave2.failed


def test_an_unreachable_host_fails_its_first_step(cluster, rep, out, no_ssh):
    no_ssh.side_effect = OSError(113, "No route to host")
    slave3 = Session(cluster.find("slave3"), cluster,
                     runner.connect(cluster.find("slave3"), fabric.Config()))
    run([slave3], list(playbooks.CLUSTER), UNGATED, rep, dry_run=False)
    assert step_lines(out) == ["slave3 add-repo failed: cannot reach 192.0.2.53:22: No route to host"]


class Answers:
    """A host whose every command answers with `stderr` and `status`, at once."""

    def __init__(self, stderr: bytes, status: int):
        self.stderr, self.status = stderr, status
        self.polled = False

    def start(self, command):
        return self

    def send(self, data):
        pass

    def shutdown_write(self):
        pass

    def poll(self, timeout):
        if self.polled:
            return b"", b"", self.status
        self.polled = True
        return b"", self.stderr, None

    def close(self):
        pass


def test_a_gather_that_fails_fails_the_host_before_any_plan(cluster, rep, out):
    """E.g. sudo asking for a password: the gather cannot run and nothing is planned."""
    session = Session(cluster.find("master1"), cluster, None,
                      remote=Remote(Answers(b"sudo: a password is required\n", 1), "sudo", "master1"))
    run([session], list(playbooks.CLUSTER), UNGATED, rep, dry_run=False)
    [line] = step_lines(out)
    assert line.startswith("master1 add-repo failed: sudo on master1 needs a password: give it")
    assert session.failed


# --- the report ------------------------------------------------------------------------------

def test_recap(rep, out):
    rep.step("master1", "write-zk", "ok")
    rep.step("master2", "write-zoo-cfg", "changed", "write /etc/zookeeper/conf/zoo.cfg")
    rep.step("slave1", "install-slave", "failed", "E: Unable to locate package mesos (exit 100)")
    rep.step("master1", "wait-zookeeper", "skipped", "dry run")
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


# --- LocalProcesses: the real scripts, run by sh under a temporary root---------------------------

class LocalProcess:
    """A command run by this machine's sh, as a host would run it (tasks.remote.Process).

    The script is rewritten (paths moved under a temporary root), which changes its size:
    the supervisor, whose last argument is that size, starts once the script is known."""

    def __init__(self, command: str, rewrite):
        self.command, self.rewrite = command, rewrite
        self.proc = None

    def send(self, data: bytes) -> None:
        if self.proc is None:
            data = self.rewrite(data)
            head, _, size = self.command.rpartition(" ")
            assert size.isdigit(), self.command
            self.proc = subprocess.Popen(["sh", "-c", f"{head} {len(data)}"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE)
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def shutdown_write(self) -> None:
        self.proc.stdin.close()

    def poll(self, timeout):
        if self.proc is None:
            return b"@@ready\n", b"", None
        streams = [s for s in (self.proc.stdout, self.proc.stderr) if not s.closed]
        ready = select.select(streams, [], [], timeout)[0] if streams else []
        out = err = b""
        for s in ready:
            data = os.read(s.fileno(), 65536)
            if not data:
                s.close()
            elif s is self.proc.stdout:
                out = data
            else:
                err = data
        if out or err or not (self.proc.stdout.closed and self.proc.stderr.closed):
            return out, err, None
        return b"", b"", self.proc.wait()

    def close(self) -> None:
        if self.proc is None:
            return
        if not self.proc.stdin.closed:
            self.proc.stdin.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        for s in (self.proc.stdout, self.proc.stderr):
            s.close()


class LocalProcesses:
    """Runs every script with sh, /etc and the marker dir moved under `root`."""

    def __init__(self, root: Path):
        self.root = root
        self.scripts: list[str] = []

    def rewrite(self, script: bytes) -> bytes:
        self.scripts.append(script.decode())
        return script.replace(b"/etc/", f"{self.root}/etc/".encode()).replace(
            b"/var/lib/mesos-fab/", f"{self.root}/var/lib/mesos-fab/".encode())

    def start(self, command: str) -> LocalProcess:
        return LocalProcess(command, self.rewrite)


def local_session(cluster, name: str, processes: LocalProcesses) -> Session:
    return Session(cluster.find(name), cluster, None,
                   remote=Remote(processes, "root", name))


@pytest.mark.skipif(__import__("os").geteuid() != 0, reason="write_file chowns to root")
def test_steps_for_real_under_a_temp_root_then_idempotent(cluster, tmp_path, out):
    for d in ("etc/mesos", "etc/zookeeper/conf", "etc/mesos-master"):
        (tmp_path / d).mkdir(parents=True)
    (tmp_path / "etc/mesos/zk").write_text("zk://localhost:2181/mesos\n")
    (tmp_path / "etc/zookeeper/conf/myid").write_text("replace this text\n")
    (tmp_path / "etc/mesos-master/quorum").write_text("1\n")
    stages = [Stage(("master",), (config.WRITE_ZK, config.WRITE_MYID, config.WRITE_ZOO_CFG,
                                  config.SET_QUORUM, config.SET_IP_HOSTNAME))]
    conn = LocalProcesses(tmp_path)
    session = local_session(cluster, "master3", conn)
    rep = report.Reporter(stream=out)
    run([session], stages, UNGATED, rep, dry_run=False)
    assert rep.counts["master3"] == {"changed": 5}, out.getvalue()
    assert len(conn.scripts) == 2, "one gather, one apply"
    assert (tmp_path / "etc/mesos/zk").read_text() == cluster.mesos_zk_url + "\n"
    assert (tmp_path / "etc/zookeeper/conf/myid").read_text() == "3\n"
    assert (tmp_path / "etc/mesos-master/quorum").read_text() == "2\n"
    assert (tmp_path / "etc/mesos-master/ip").read_text() == "192.0.2.3\n"
    assert "server.3=192.0.2.3:2888:3888\n" in (tmp_path / "etc/zookeeper/conf/zoo.cfg").read_text()
    assert sorted(p.name for p in (tmp_path / "var/lib/mesos-fab/restart").iterdir()) == \
        ["marathon", "mesos-master", "zookeeper"]
    assert not [p for p in tmp_path.rglob(".*")], "no temporary file left"

    again = report.Reporter(stream=io.StringIO())
    conn = LocalProcesses(tmp_path)
    run([local_session(cluster, "master3", conn)], stages, UNGATED, again, False)
    assert again.counts["master3"] == {"ok": 5}, "a second run changes nothing"
    assert len(conn.scripts) == 1


@pytest.mark.skipif(__import__("os").geteuid() != 0, reason="write_file chowns to root")
def test_a_failing_command_is_reported_with_its_error(cluster, tmp_path, out):
    (tmp_path / "etc/mesos").mkdir(parents=True)
    (tmp_path / "etc/mesos/zk").mkdir()      # a directory where the file should be
    rep = report.Reporter(stream=out)
    session = local_session(cluster, "slave1", LocalProcesses(tmp_path))
    run([session], [Stage(("slave",), (config.WRITE_ZK,))], UNGATED, rep, dry_run=False)
    [line] = step_lines(out)
    assert line.startswith("slave1 write-zk failed: ") and line.endswith("(exit 1)")
    assert session.failed


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
        cli.run_stages(Context(config=InvokeConfig(overrides={"inventory": str(bad)})),
                       playbooks.CLUSTER)
    assert exc.value.code == 2
    assert exc.value.message.startswith("invalid inventory, nothing was changed:\n")
    assert f"{bad}:2: master 'master1' has no myid" in exc.value.message
    created.assert_not_called()
    assert init.call_count == 0
    no_ssh.assert_not_called()


def test_cli_connects_through_the_inventory_and_exits_1_on_a_failure(mocker, no_ssh,
                                                                     cli_reporter, out):
    made = []
    real = fabric.Connection.__init__

    def init(self, host, **kwargs):
        made.append((host, kwargs["port"], kwargs["connect_timeout"]))
        real(self, host, **kwargs)
    mocker.patch.object(fabric.Connection, "__init__", init)
    no_ssh.side_effect = OSError(113, "No route to host")
    with pytest.raises(Exit) as exc:
        cli.run_stages(Context(config=InvokeConfig(overrides={"inventory": str(TUTORIAL)})),
                       playbooks.CLUSTER)
    assert exc.value.code == 1
    assert sorted(made) == [(ip, 22, 15) for ip in ("192.0.2.1", "192.0.2.2", "192.0.2.3",
                                                    "192.0.2.51", "192.0.2.52", "192.0.2.53")]
    assert sorted(step_lines(out)) == sorted(
        f"{h} add-repo failed: cannot reach {ip}:22: No route to host" for h, ip in [
            ("master1", "192.0.2.1"), ("master2", "192.0.2.2"), ("master3", "192.0.2.3"),
            ("slave1", "192.0.2.51"), ("slave2", "192.0.2.52"), ("slave3", "192.0.2.53")])


# --- playbooks -------------------------------------------------------------------------------

def test_playbook_steps_apply_to_their_role():
    assert all("master" in s.roles for s in playbooks.MASTER)
    assert all("slave" in s.roles for s in playbooks.SLAVE)
    assert playbooks.CLUSTER == (Stage(("master",), playbooks.MASTER),
                                 Stage(("slave",), playbooks.SLAVE)), "masters, then slaves"


def test_only_start_services_restarts_and_it_comes_last():
    """Restarts are scheduled across hosts after a host's other changes; a step after
    start-services would have its changes applied before the restarts."""
    restarting = set()
    for path in test_steps.case_files():
        case, step, ctx, snapshot = test_steps.load(path)
        planned = plan.plan_host(ctx, [step], snapshot).planned
        if any(isinstance(item, plan.Restart) for _, items in planned for item in items):
            restarting.add(step.name)
    assert restarting == {"start-services"}
    for steps in (playbooks.MASTER, playbooks.SLAVE):
        assert steps[-1] is service.START_SERVICES


# --- long round trips say what they wait for -------------------------------------------------

class SlowHost(Host):
    def run_round(self, changes, gather=()):
        if changes:
            time.sleep(0.4)
        return super().run_round(changes, gather)


@pytest.mark.parametrize("host_class, shown", [(SlowHost, True), (Host, False)])
def test_a_long_round_trip_is_shown_as_a_wait(cluster, rep, monkeypatch, host_class, shown):
    board_out = io.StringIO()
    monkeypatch.setattr(progress, "BOARD", progress.Board(board_out, tty=False))
    monkeypatch.setattr(progress, "TICK", 0.05)
    monkeypatch.setattr(runner, "SHOW_WAITS_AFTER", 0.2)
    sessions = [host_class(cluster.find("master1"), cluster, installed_host(cluster, "master1"))]
    run(sessions, [Stage(("master",), (config.WRITE_ZK,))], UNGATED, rep, dry_run=False)
    lines = board_out.getvalue().splitlines()
    if shown:
        assert lines[0].startswith("master1 write /etc/mesos/zk: waiting ... (")
        assert re.fullmatch(r"master1 write /etc/mesos/zk: done after \d+ s", lines[-1])
    else:
        assert lines == []
