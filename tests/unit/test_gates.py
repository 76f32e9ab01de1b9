"""The gates of a rolling restart against fake daemons on loopback (`test_status.Fakes`: a fake
ZooKeeper, Mesos master and Marathon per master; a fake agent per slave): each reads what the
daemons answer and judges it as the real ones would report it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tasks import gates
from tests.unit.fake_marathon import FakeMarathon
from tests.unit.test_status import (Fakes, agent, metrics, mntr, no_proxy_for_loopback, srvr)

__all__ = ["no_proxy_for_loopback"]
FAST = 1.0


class Cluster(Fakes):
    """Three fake masters (master1 leads everything) and a fake agent on each slave."""

    def __init__(self):
        super().__init__()
        self.agents = {s.name: FakeMarathon() for s in self.cluster.slaves}
        slaves = []
        for s in self.cluster.slaves:
            url = self.agents[s.name].url
            self.agents[s.name].on("GET", "/metrics/snapshot", (200, {"slave/registered": 1.0}))
            slaves.append(replace(s, ip="127.0.0.1", settings=replace(
                s.settings, mesos_slave_port=int(url.rsplit(":", 1)[1]))))
        self.cluster = replace(self.cluster, slaves=tuple(slaves))
        for m in self.masters.values():
            m.marathon.on("GET", "/ping", (200, b"pong"))
        # Every fake agent is 127.0.0.1: the master tells them apart by hostname.
        self.state([("slave1", "S1", True), ("slave2", "S2", True), ("slave3", "S3", True)],
                   [("long.1", "S2", "TASK_RUNNING")])

    def state(self, agents, tasks, zk="zk://127.0.0.1:2181/mesos"):
        self["master1"].mesos.on("GET", "/master/state", (200, {
            "flags": {"zk": zk, "quorum": "2"},
            "slaves": [agent("127.0.0.1", active, hostname=name) | {"id": agent_id}
                       for name, agent_id, active in agents],
            "frameworks": [{"id": "marathon", "tasks": [
                {"id": t, "state": state, "slave_id": a} for t, a, state in tasks]}]}))

    def host(self, name):
        return self.cluster.find(name)

    def close(self):
        super().close()
        for a in self.agents.values():
            a.close()


@pytest.fixture
def fakes():
    f = Cluster()
    yield f
    f.close()


def read(gate, fakes, *names):
    return gate.observe(fakes.cluster, [fakes.host(n) for n in names], FAST)


# --- ZooKeeper -------------------------------------------------------------------------------

def test_zookeeper_whole_ensemble_is_ready_and_back(fakes):
    seen = read(gates.ZOOKEEPER, fakes)
    hosts = [fakes.host("master2")]
    assert gates.ZOOKEEPER.leader(fakes.cluster, seen) == "master1"
    assert gates.ZOOKEEPER.ready(fakes.cluster, seen, hosts) is None
    assert gates.ZOOKEEPER.back(fakes.cluster, seen, seen, hosts, True) is None


def test_zookeeper_member_not_back_or_not_synced_is_named(fakes):
    fakes["master2"].zk.answers["srvr"] = "This ZooKeeper instance is not currently serving requests\n"
    fakes["master1"].zk.answers["mntr"] = mntr(1)
    seen = read(gates.ZOOKEEPER, fakes)
    assert gates.ZOOKEEPER.back(fakes.cluster, seen, seen, [fakes.host("master2")], True) == \
        "master2 not serving"
    assert gates.ZOOKEEPER.ready(fakes.cluster, seen, [fakes.host("master3")]) == \
        "master2 not serving"
    fakes["master2"].zk.answers["srvr"] = srvr("follower")
    seen = read(gates.ZOOKEEPER, fakes)
    assert gates.ZOOKEEPER.back(fakes.cluster, seen, seen, [fakes.host("master2")], True) == \
        "leader master1 has zk_synced_followers 1, not 2"


def test_zookeeper_down_member_names_the_reason(fakes):
    fakes["master3"].zk.close()
    seen = read(gates.ZOOKEEPER, fakes)
    problem = gates.ZOOKEEPER.ready(fakes.cluster, seen, [fakes.host("master2")])
    assert problem.startswith("master3 ZooKeeper 127.0.0.1:") and "refused" in problem


def test_zookeeper_start_gate_waits_only_where_a_quorum_can_form(fakes):
    for m in ("master1", "master2", "master3"):
        fakes[m].zk.answers["srvr"] = srvr("standalone")
    seen = read(gates.ZOOKEEPER_STARTS, fakes)
    one, two = [fakes.host("master1")], [fakes.host("master1"), fakes.host("master2")]
    assert not gates.ZOOKEEPER_STARTS.needed(fakes.cluster, seen, one)
    assert gates.ZOOKEEPER_STARTS.needed(fakes.cluster, seen, two)
    assert gates.ZOOKEEPER_STARTS.met(fakes.cluster, seen, two) == \
        "master1 standalone; master2 standalone"


# --- mesos-master ----------------------------------------------------------------------------

def test_mesos_one_leader_and_recovered_logs(fakes):
    seen = read(gates.MESOS_MASTER, fakes)
    assert gates.MESOS_MASTER.leader(fakes.cluster, seen) == "master1"
    assert gates.MESOS_MASTER.ready(fakes.cluster, seen, [fakes.host("master1")]) is None
    assert gates.MESOS_MASTER.back(fakes.cluster, seen, seen, [fakes.host("master3")], True) is None


def test_masters_serve_only_under_the_inventorys_zookeeper_path(fakes):
    seen = read(gates.MESOS_MASTER, fakes)
    assert seen.zk_path.value == "/mesos"
    assert gates.MESOS_MASTER.serving(fakes.cluster, seen, fakes.host("master2"))
    # zk_mesos_path = /mesos2 in the inventory, the leader still on /mesos: a move, not a roll.
    fakes.state([], [], zk="zk://127.0.0.1:2181,127.0.0.2:2181/mesos")
    moved = replace(fakes.cluster, masters=tuple(
        replace(m, settings=replace(m.settings, zk_mesos_path="/mesos2"))
        for m in fakes.cluster.masters))
    assert not gates.MESOS_MASTER.serving(moved, read(gates.MESOS_MASTER, fakes),
                                          moved.find("master2"))
    fakes["master1"].mesos.on("GET", "/metrics/snapshot", metrics(False))
    seen = read(gates.MESOS_MASTER, fakes)
    assert seen.zk_path is None and not gates.MESOS_MASTER.serving(
        fakes.cluster, seen, fakes.host("master2")), "no leader: nothing to keep up"


def test_mesos_restarted_master_without_its_log_is_not_back(fakes):
    fakes["master3"].mesos.on("GET", "/metrics/snapshot", metrics(False, recovered=0.0))
    seen = read(gates.MESOS_MASTER, fakes)
    assert gates.MESOS_MASTER.back(fakes.cluster, seen, seen, [fakes.host("master3")], True) == \
        "master3 registrar/log/recovered 0"
    # Restarting master2 now would leave one recovered replica (master1) of a quorum of 2.
    assert gates.MESOS_MASTER.ready(fakes.cluster, seen, [fakes.host("master2")]) == \
        "1 other masters hold a recovered log, the quorum is 2 (master3 log not recovered)"


def test_mesos_two_elected_is_named(fakes):
    fakes["master2"].mesos.on("GET", "/metrics/snapshot", metrics(True))
    seen = read(gates.MESOS_MASTER, fakes)
    assert gates.MESOS_MASTER.back(fakes.cluster, seen, seen, [fakes.host("master3")], True) == \
        "2 masters elected (master1, master2)"


# --- Marathon --------------------------------------------------------------------------------

def test_marathon_answers_and_names_its_leader(fakes):
    seen = read(gates.MARATHON, fakes)
    assert gates.MARATHON.leader(fakes.cluster, seen) == "master1"
    assert gates.MARATHON.ready(fakes.cluster, seen, [fakes.host("master1")]) is None
    assert gates.MARATHON.back(fakes.cluster, seen, seen, [fakes.host("master2")], True) is None


def test_marathon_restarted_without_a_leader_or_down(fakes):
    fakes["master2"].marathon.on("GET", "/v2/leader", (404, {"message": "no leader"}))
    fakes["master3"].marathon.close()
    seen = read(gates.MARATHON, fakes)
    assert gates.MARATHON.back(fakes.cluster, seen, seen, [fakes.host("master2")], True) == \
        "master2 names no leader"
    problem = gates.MARATHON.back(fakes.cluster, seen, seen, [fakes.host("master3")], True)
    assert problem.startswith("master3 no Marathon master answered GET /ping")


def test_marathon_without_another_master_cannot_spare_one(fakes):
    for m in ("master2", "master3"):
        fakes[m].marathon.on("GET", "/ping", (503, b"not ready"))
    seen = read(gates.MARATHON, fakes)
    assert gates.MARATHON.ready(fakes.cluster, seen, [fakes.host("master1")]).startswith(
        "no other master answers: master2 ")


# --- agents ----------------------------------------------------------------------------------

def test_agent_back_with_its_tasks(fakes):
    before = read(gates.AGENTS, fakes, "slave2")
    assert gates.AGENTS.serving(fakes.cluster, before, fakes.host("slave2"))
    assert gates.AGENTS.ready(fakes.cluster, before, [fakes.host("slave2")]) is None
    assert gates.AGENTS.back(fakes.cluster, before, before, [fakes.host("slave2")], True) is None


def test_agent_not_registered_yet_or_its_task_lost(fakes):
    before = read(gates.AGENTS, fakes, "slave2")
    fakes.agents["slave2"].on("GET", "/metrics/snapshot", (200, {"slave/registered": 0.0}))
    seen = read(gates.AGENTS, fakes, "slave2")
    assert gates.AGENTS.back(fakes.cluster, before, seen, [fakes.host("slave2")], True) == \
        "slave2 slave/registered 0"
    fakes.agents["slave2"].on("GET", "/metrics/snapshot", (200, {"slave/registered": 1.0}))
    fakes.state([("slave1", "S1", True), ("slave2", "S2", True), ("slave3", "S3", True)],
                [("long.1", "S2", "TASK_LOST")])
    seen = read(gates.AGENTS, fakes, "slave2")
    assert gates.AGENTS.back(fakes.cluster, before, seen, [fakes.host("slave2")], True) == \
        "slave2 has not recovered the running tasks long.1"
    assert gates.AGENTS.back(fakes.cluster, before, seen, [fakes.host("slave2")], False) is None, \
        "an agent with a new identity cannot recover its tasks"


def test_agent_inactive_in_the_masters_state(fakes):
    fakes.state([("slave2", "S2", False)], [])
    seen = read(gates.AGENTS, fakes, "slave2")
    assert gates.AGENTS.back(fakes.cluster, seen, seen, [fakes.host("slave2")], True) == \
        "slave2 not active in master1's /master/state"


def test_agents_without_a_leading_master(fakes):
    fakes["master1"].mesos.on("GET", "/metrics/snapshot", metrics(False))
    seen = read(gates.AGENTS, fakes, "slave1")
    assert gates.AGENTS.ready(fakes.cluster, seen, [fakes.host("slave1")]) == \
        "the leading master: no master elected"


# --- Marathon everywhere, before a ZooKeeper restart -------------------------------------------

def test_a_zookeeper_restart_waits_for_the_marathons_that_ran_when_the_roll_began(fakes):
    every = gates.MARATHON_EVERYWHERE
    hosts = [fakes.host("master2")]
    before = read(every, fakes)
    assert every.ready(fakes.cluster, before, before, hosts) is None
    fakes["master3"].marathon.close()
    problem = every.ready(fakes.cluster, before, read(every, fakes), hosts)
    assert problem.startswith("master3 no Marathon master answered GET /ping")
    # A Marathon not running when the roll began (a new master's, started later) is not waited for.
    assert every.ready(fakes.cluster, read(every, fakes), read(every, fakes), hosts) is None
