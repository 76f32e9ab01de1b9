"""Rolling restarts through the runner, without a network: the hosts are `test_runner.Host`s,
and the gates read a `gate_views.World` that the hosts' (re)starts change, as the daemons
would: the order (the leader last, read again before each host), the batches of agents, a
gate that is not met stopping the run, and a re-run continuing from the marks left."""

from __future__ import annotations

import io

import pytest
from invoke import Config as InvokeConfig
from invoke import Context
from invoke.exceptions import Exit

from tasks import cli, facts, gates, inventory, playbooks, report
from tasks.runner import Run, Stage, run
from tasks.status import Probe
from tasks.steps import service
from tests.unit import gate_views
from tests.unit.test_runner import (TUTORIAL, configured_host, hosts, marked_masters, no_gate_reads,
                                    no_ssh, order, out, rep, step_lines)

__all__ = ["no_gate_reads", "no_ssh", "out", "rep"]     # fixtures shared with test_runner
START = [Stage(("master",), (service.START_SERVICES,))]
MASTER_SERVICES = ("zookeeper", "mesos-master", "marathon")


@pytest.fixture
def cluster(tmp_path):
    """The tutorial's inventory, with gates that give up after 1 s."""
    path = tmp_path / "hosts.ini"
    path.write_text(TUTORIAL.read_text() + "\n[all:vars]\ngate_timeout = 1\n")
    return inventory.load(path)


@pytest.fixture
def live(cluster):
    world = gate_views.World(cluster, gate_views.everywhere(cluster))
    world.leaders = {"zookeeper": "master1", "mesos-master": "master2", "marathon": "master3"}
    return world


def marked_slaves(cluster) -> dict:
    host_facts = {}
    for s in cluster.slaves:
        f = configured_host(cluster, s.name)
        f[facts.RESTART_MARKS] = frozenset({"mesos-slave"})
        host_facts[s.name] = f
    return host_facts


def restarts(world, service_name):
    return [h for h, s in world.log if s == service_name]


def test_each_service_rolls_one_master_at_a_time_its_own_leader_last(cluster, rep, out, live):
    sessions = hosts(cluster, marked_masters(cluster, MASTER_SERVICES), live)
    run(sessions, START, order(live), rep, dry_run=False)
    assert restarts(live, "zookeeper") == ["master2", "master3", "master1"]
    assert restarts(live, "mesos-master") == ["master1", "master3", "master2"]
    assert restarts(live, "marathon") == ["master1", "master2", "master3"]
    assert [s for _, s in live.log] == ["zookeeper"] * 3 + ["mesos-master"] * 3 + ["marathon"] * 3
    for s in sessions:
        # A round trip per restart, none with a settle-and-check: the gate checks, from here.
        assert [c for c, _ in s.trips][1:] == [
            [f"restart {svc} (marked for a restart)", f"clear the restart mark of {svc}"]
            for svc in MASTER_SERVICES]
    lines = step_lines(out)
    assert "master2 wait-zookeeper ok" in lines and "master1 wait-marathon ok" in lines
    assert not any(s.failed for s in sessions)


def test_the_leader_is_read_again_before_each_host(cluster, rep, live):
    """The leader moved while the roll went on (planned: master2 last): it still goes last."""
    class Moving(gate_views.World):
        def restarted(self, host, service_name):
            super().restarted(host, service_name)
            if service_name == "mesos-master" and host == "master1":
                self.leaders["mesos-master"] = "master3"
    world = Moving(cluster, gate_views.everywhere(cluster))
    world.leaders = {"mesos-master": "master2"}
    sessions = hosts(cluster, marked_masters(cluster, ("mesos-master",)), world)
    run(sessions, START, order(world), rep, dry_run=False)
    assert restarts(world, "mesos-master") == ["master1", "master2", "master3"]


def test_agents_go_in_batches_and_their_tasks_are_checked(cluster, rep, out):
    world = gate_views.World(cluster, gate_views.everywhere(cluster))
    world.tasks = [("slave1", "app.1"), ("slave3", "app.2")]
    sessions = hosts(cluster, marked_slaves(cluster), world)
    run(sessions, [Stage(("slave",), (service.START_SERVICES,))], order(world), rep,
        dry_run=False, batch=2)
    log = restarts(world, "mesos-slave")
    assert sorted(log[:2]) == ["slave1", "slave2"] and log[2:] == ["slave3"]
    assert step_lines(out).count("slave3 wait-mesos-slave ok") == 1


def test_an_agent_that_lost_its_tasks_stops_the_roll(cluster, rep, out):
    world = gate_views.World(cluster, gate_views.everywhere(cluster))
    world.tasks = [("slave1", "app.1")]
    world.lost = {"app.1"}                        # killed by the restart, not recovered
    sessions = hosts(cluster, marked_slaves(cluster), world)
    run(sessions, [Stage(("slave",), (service.START_SERVICES,))], order(world), rep,
        dry_run=False)
    assert restarts(world, "mesos-slave") == ["slave1"], "no further agent is touched"
    assert ("slave1 wait-mesos-slave failed: restarted, but after 1 s: expected the agents on "
            "slave1 registered and active again, with the tasks that were running (same task "
            "ids); saw slave1 has not recovered the running tasks app.1") in step_lines(out)
    assert "slave2 start-services skipped (not done: the run stopped at slave1 wait-mesos-slave)" \
        in step_lines(out)


def test_a_host_that_does_not_come_back_stops_the_run_and_a_rerun_continues(cluster, rep, out, live):
    live.broken = {("master2", "zookeeper")}
    sessions = hosts(cluster, marked_masters(cluster, ("zookeeper", "mesos-master")), live)
    run(sessions + hosts(cluster, {"slave1": configured_host(cluster, "slave1")}, live),
        list(playbooks.CLUSTER), order(live), rep, dry_run=False)
    assert live.log == [("master2", "zookeeper")], "nothing after the host that failed its gate"
    lines = step_lines(out)
    assert ("master2 wait-zookeeper failed: restarted, but after 1 s: expected ZooKeeper on "
            "master2 leader or follower again, and the leader's zk_synced_followers = 2; saw "
            "master2 [Errno 111] Connection refused") in lines
    assert "master3 start-services skipped (not done: the run stopped at master2 " \
           "wait-zookeeper)" in lines
    assert not any(line.startswith("slave1") for line in lines), "the slaves' stage never ran"
    assert "a re-run continues them" in out.getvalue()
    assert [s.host.name for s in sessions if s.failed] == ["master2"]

    # The re-run: master2's ZooKeeper came back and its mark is gone (cleared with its
    # restart); master1 and master3 still carry theirs.
    live.broken.clear()
    live.restarted("master2", "zookeeper")
    live.log.clear()
    again = marked_masters(cluster, ("zookeeper", "mesos-master"))
    again["master2"][facts.RESTART_MARKS] = frozenset({"mesos-master"})
    run(hosts(cluster, again, live), START, order(live), report.Reporter(stream=io.StringIO()),
        dry_run=False)
    assert restarts(live, "zookeeper") == ["master3", "master1"]
    assert restarts(live, "mesos-master") == ["master1", "master3", "master2"]


def test_no_restart_while_the_service_cannot_spare_the_host(cluster, rep, out, live):
    """master3 is down (and not in this run): restarting master1's ZooKeeper would leave one
    member of three; nothing is restarted, and the reason names master3."""
    live.serving["zookeeper"].discard("master3")
    host_facts = marked_masters(cluster, ("zookeeper",))
    del host_facts["master3"]
    sessions = hosts(cluster, host_facts, live)
    run(sessions, START, order(live), rep, dry_run=False)
    assert live.log == []
    assert ("master2 wait-zookeeper failed: zookeeper was not restarted on master2: after 1 s "
            "it still could not spare it: master3 [Errno 111] Connection refused") in step_lines(out)


def test_a_host_where_the_service_does_not_serve_starts_first_and_is_waited_for(cluster, rep, live):
    """A replaced master: its ZooKeeper (standalone, from the package) restarts with the new
    zoo.cfg and is waited for; then the others roll, the leader last."""
    live.serving["zookeeper"].discard("master3")
    sessions = hosts(cluster, marked_masters(cluster, ("zookeeper",)), live)
    run(sessions, START, order(live), rep, dry_run=False)
    assert restarts(live, "zookeeper") == ["master3", "master2", "master1"]
    assert [c for c, _ in sessions[2].trips][1] == [
        "restart zookeeper (marked for a restart)", "clear the restart mark of zookeeper",
        "check that zookeeper stayed up"]


def test_dry_run_prints_the_order_and_the_gates_and_changes_nothing(cluster, rep, out, live):
    sessions = hosts(cluster, marked_masters(cluster, MASTER_SERVICES), live)
    run(sessions, START, order(live), rep, dry_run=True)
    text = out.getvalue()
    assert ("rolling restart of zookeeper, one host at a time, the leader last: master2 -> "
            "master3 -> master1 (leader); before each, zookeeper must be able to spare it, "
            "after each, wait-zookeeper (up to 1 s)") in text
    assert "master1 -> master3 -> master2 (leader)" in text
    assert "master1 -> master2 -> master3 (leader)" in text
    assert ("master2 wait-mesos-master would wait until registrar/log/recovered = 1 on master2, "
            "and exactly one master elected") in text
    assert live.log == [] and all(len(s.trips) == 1 for s in sessions)


def test_rolling_restart_marks_the_named_services_then_rolls_them(cluster, rep, out, live):
    host_facts = {h.name: configured_host(cluster, h.name) for h in cluster.hosts}
    run(hosts(cluster, host_facts, live), list(playbooks.rolling_restart(("zookeeper", "mesos-slave"))),
        order(live), rep, dry_run=False)
    assert [s for _, s in live.log] == ["zookeeper"] * 3 + ["mesos-slave"] * 3
    assert restarts(live, "zookeeper")[-1] == "master1"
    assert "master1 rolling-restart changed (mark zookeeper for a restart)" in step_lines(out)


def test_the_default_batch_is_a_quarter_of_the_agents(tmp_path):
    def batch(slaves: int) -> int:
        path = tmp_path / f"{slaves}.ini"
        path.write_text("[masters]\nm1 ip=192.0.2.1 myid=1\n[slaves]\n" + "".join(
            f"s{i} ip=192.0.2.{100 + i}\n" for i in range(slaves)))
        return Run(inventory.load(path), report.Reporter(stream=io.StringIO())).agents_per_batch
    assert [batch(n) for n in (1, 3, 4, 8, 9, 50)] == [1, 1, 1, 2, 2, 12]


def test_batch_below_zero_is_refused_before_anything(mocker):
    connect = mocker.patch("tasks.cli.connect")
    with pytest.raises(Exit) as exc:
        cli.run_stages(Context(config=InvokeConfig(overrides={"inventory": str(TUTORIAL)})),
                       playbooks.CLUSTER, batch=-1)
    assert exc.value.code == 2 and "--batch must be 1 or more" in exc.value.message
    connect.assert_not_called()


def converged_on_2888(cluster) -> dict:
    """Every master's facts as they were before zk_peer_port went to 2889."""
    host_facts = {}
    for m in cluster.masters:
        f = configured_host(cluster, m.name)
        f[facts.file(service.ZOO_CFG)] = facts.File(
            f[facts.file(service.ZOO_CFG)].content.replace(":2889:", ":2888:"))
        host_facts[m.name] = f
    return host_facts


def test_a_peer_port_change_bridges_the_followers_to_the_leader_then_rolls_them_again(tmp_path, live):
    """zk_peer_port 2888 -> 2889: a follower restarted with the new zoo.cfg would look for the
    leader on 2889, where it does not listen yet. Each follower starts on the leader's running
    line first (keeping its mark), then the leader restarts, then they restart as written."""
    path = tmp_path / "hosts.ini"
    path.write_text(TUTORIAL.read_text() + "\n[all:vars]\nzk_peer_port = 2889\n")
    cluster = inventory.load(path)
    world = gate_views.World(cluster, gate_views.everywhere(cluster))
    world.leaders = {"zookeeper": "master3"}
    sessions = hosts(cluster, converged_on_2888(cluster), world)
    rep_ = report.Reporter(stream=io.StringIO())
    run(sessions, [Stage(("master",), playbooks.MASTER)], order(world), rep_, dry_run=False)
    # Leadership moved to master1 when master3 restarted: it goes last in the second pass.
    assert restarts(world, "zookeeper") == ["master1", "master2", "master3", "master2", "master1"]
    master1 = [c for c, _ in sessions[0].trips]
    assert master1[2] == [
        "write /etc/zookeeper/conf/zoo.cfg with server.3=192.0.2.3:2888:3888, as the leader runs",
        "restart zookeeper on the leader's running ports",
        "write /etc/zookeeper/conf/zoo.cfg back as wanted (restart still owed)"]
    assert master1[3] == ["restart zookeeper (marked for a restart)",
                          "clear the restart mark of zookeeper"]
    # The leader, restarted onto 2889 where the bridged followers do not look for it, must not
    # lead again: it stops, master1 and master2 elect a leader, then it starts.
    master3 = [c for c, _ in sessions[2].trips]
    assert master3[2:4] == [
        ["stop zookeeper, so that the others elect a leader without it"],
        ["restart zookeeper (marked for a restart)", "clear the restart mark of zookeeper"]]
    lines = [line for line in rep_.stream.getvalue().splitlines() if line.startswith("master3 ")]
    assert lines.index("master3 hand-over-zookeeper ok") < lines.index("master3 wait-zookeeper ok")
    assert not any(s.failed for s in sessions)


def test_a_leader_that_cannot_hand_over_is_started_again_and_the_roll_stops(tmp_path):
    """The others elect no leader while the old one is stopped: after the gate timeout it is
    started all the same, the failure says what was seen, and no further member is touched."""
    path = tmp_path / "hosts.ini"
    path.write_text(TUTORIAL.read_text() + "\n[all:vars]\nzk_peer_port = 2889\ngate_timeout = 1\n")
    cluster = inventory.load(path)

    class Leaderless(gate_views.World):
        def stopped(self, host, service_name):
            super().stopped(host, service_name)
            self.leaders[service_name] = None           # the others keep electing

        def script(self, service_name, cluster, hosts):
            seen = super().script(service_name, cluster, hosts)
            if service_name == "zookeeper" and self.leaders.get("zookeeper") is None:
                return gates.ZkSeen({m: Probe(error=gate_views.REFUSED) if m == "master3" else
                                     Probe("electing") for m in seen.modes}, None, None)
            return seen
    world = Leaderless(cluster, gate_views.everywhere(cluster))
    world.leaders = {"zookeeper": "master3"}
    sessions = hosts(cluster, converged_on_2888(cluster), world)
    rep_ = report.Reporter(stream=io.StringIO())
    run(sessions, [Stage(("master",), playbooks.MASTER)], order(world), rep_, dry_run=False)
    assert restarts(world, "zookeeper") == ["master1", "master2", "master3"], \
        "started again, and no second pass"
    text = rep_.stream.getvalue()
    assert ("master3 hand-over-zookeeper failed: not met after 1 s: expected ZooKeeper on "
            "master1, master2 elects a leader without master3; saw no leader among master1 "
            "electing, master2 electing; zookeeper was started again on master3") in text
    assert "stopped at master3 hand-over-zookeeper" in text


def test_the_bridge_names_the_leader_as_it_runs():
    new = "tickTime=2000\nserver.1=a:2889:3888\nserver.2=b:2889:3888\nserver.3=c:2889:3888\n"
    from tasks import render
    assert render.zoo_server(new, 3) == "c:2889:3888" and render.zoo_server(new, 4) is None
    assert render.with_zoo_server(new, 3, "c:2888:3888") == new.replace("c:2889", "c:2888")


def test_zookeeper_waits_for_the_marathons_that_ran_then_restarts_all_the_same(cluster, rep, out):
    """Marathon's leader on master3 exits when the first ZooKeeper restarts and does not come
    back: each later restart waits for it (1 s here), says so, and goes ahead."""
    class Exiting(gate_views.World):
        def restarted(self, host, service_name):
            super().restarted(host, service_name)
            self.serving["marathon"].discard("master3")
    world = Exiting(cluster, gate_views.everywhere(cluster))
    world.leaders = {"zookeeper": "master1", "marathon": "master3"}
    sessions = hosts(cluster, marked_masters(cluster, ("zookeeper",)), world)
    run(sessions, START, order(world), rep, dry_run=False)
    assert restarts(world, "zookeeper") == ["master2", "master3", "master1"]
    lines = step_lines(out)
    assert not any("restarting master2 all the same" in line for line in lines)
    assert ("wait-marathon-everywhere: not met after 1 s (master3 [Errno 111] Connection "
            "refused); restarting master3 all the same") in lines
