"""Rolling, health-gated restarts on the testbed, watched from threads that poll the daemons
themselves while the tool runs (tests/integration/pollers.py): ZooKeeper `srvr` every 50 ms,
Marathon's /v2/apps on every master every 100 ms, the elected Mesos master every 200 ms.

In file order, on a testbed of its own with a long-running app (a `while true` loop):
- a change of every master's zoo.cfg (zk_peer_port), then of the ZooKeeper URL (a new Mesos
  path), applied with `fab cluster`, and `fab rolling-restart` of every service: a majority
  of the ZooKeeper servers always runs, the only polls without a ZooKeeper leader are the
  elections that restarting a leader costs; /v2/apps answers on some master but for the
  Marathon leader changes (one per ZooKeeper election, one per restart of Marathon's leader),
  each at most FAILOVER seconds; the task keeps its id; the Mesos leader changes at most once;
- `fab -H master2 start-services` restarts that one host and waits for its gate;
- a gate that is not met stops the roll, touching no further host, and a re-run continues.
"""

from __future__ import annotations

import re
import time

import pytest

from testbed import hosts as tb
from tests.integration.conftest import (MASTERS, SLAVES, cat, fab, ip, service_start,
                                        try_json, wait_for, zk_mode)
from tests.integration.pollers import Watch
from tests.integration.test_cluster import assert_cluster_healthy, recap_changed
from tests.integration.test_standins_day2 import add_setting, deploy, edit_inventory, marathon_tasks

LOOP = "while true; do sleep 1; done"
ELECTION = 2.0      # seconds: the longest a ZooKeeper leader election may leave it without one
# Seconds: the longest Marathon may answer nowhere when its leader changes. Its leader exits
# whenever its ZooKeeper connection is suspended, which every ZooKeeper leader election does
# to every client (Curator's LeaderLatch; Marathon 1.4 then terminates): the election, the
# clients' reconnection, then Marathon's own election. A restart of Marathon's leader costs
# only the last.
FAILOVER = 4.0


@pytest.fixture(scope="module")
def long_task(tmp_path_factory):
    """A fresh testbed, the tutorial's cluster, and a long-running app: its task."""
    tb.down(log=lambda *a: None)
    tb.up()
    assert fab("cluster").returncode == 0
    assert_cluster_healthy()
    return deploy(tmp_path_factory.mktemp("apps"),
                  {"id": "long", "cmd": LOOP, "cpus": 0.1, "mem": 16})


def watched(*args: str) -> tuple[Watch, object, float]:
    with Watch([ip(m) for m in MASTERS]) as watch:
        time.sleep(0.5)
        started = time.monotonic()
        result = fab(*args)
        took = time.monotonic() - started
        time.sleep(0.5)
    print(f"{' '.join(args)}: {took:.1f} s; {watch.summary()}")
    return watch, result, took


def assert_kept_up(watch: Watch, task: dict, zk_elections: int,
                   marathon_leader_restarts: int = 0) -> None:
    """What the issue asks of a change to a live cluster, as the pollers saw it. Marathon:
    it answers but for its leader changes, each one short: those the ZooKeeper elections
    force, and its leader's own restart. (The issue's "95 % of the polls" holds only for rolls
    long enough to dilute them: a 20 s roll with two leader changes answers in about 93 %.)"""
    assert watch.zookeeper.majority_down() == [], "a majority of ZooKeeper servers went down"
    gaps = watch.zookeeper.without_quorum()
    assert len(gaps) <= zk_elections and all(g < ELECTION for g in gaps), \
        f"ZooKeeper without a leader: {gaps} (the leader restarted {zk_elections} times)"
    outages = watch.marathon.outages()
    changes = zk_elections + marathon_leader_restarts
    assert max(outages, default=0) <= FAILOVER and sum(outages) <= changes * FAILOVER, \
        f"Marathon answered nowhere for {outages} s, with {changes} leader changes: " \
        f"{watch.summary()}"
    assert len(watch.mesos.leaders()) <= 2, f"Mesos leaders {watch.mesos.leaders()}"
    assert [t["id"] for t in wait_for("the long task in Marathon", lambda: marathon_tasks("/long"))] \
        == [task["id"]]


def test_a_peer_port_change_rolls_zookeeper_and_keeps_its_quorum(long_task):
    edit_inventory(add_setting("zk_peer_port = 2889"))
    watch, result, _ = watched("cluster")
    assert result.returncode == 0
    # Each follower was bridged to the leader's running port, then restarted as written: two
    # leader restarts, two elections.
    assert_kept_up(watch, long_task, zk_elections=2)
    for m in MASTERS:
        servers = [line for line in cat(m, "/etc/zookeeper/conf/zoo.cfg").splitlines()
                   if line.startswith("server.")]
        assert servers == [f"server.{i}={ip(n)}:2889:3888" for i, n in enumerate(MASTERS, 1)]
    assert sorted(zk_mode(m) for m in MASTERS) == ["follower", "follower", "leader"]
    # A Marathon leader cut off by a ZooKeeper election exits; systemd starts it again 20 s
    # later. Once it has, a re-run has nothing to do.
    assert_cluster_healthy()
    again = fab("cluster")
    assert again.returncode == 0 and not any(recap_changed(again.stdout).values())


def test_a_new_zookeeper_path_for_mesos_moves_the_masters_together(long_task):
    """A Mesos master restarted onto another path would be alone there, elected with a log it
    cannot recover: the masters move together, Marathon and the agents then roll."""
    edit_inventory(add_setting("zk_mesos_path = /mesos2"))
    watch, result, _ = watched("cluster")
    assert result.returncode == 0
    assert_kept_up(watch, long_task, zk_elections=0, marathon_leader_restarts=1)
    for h in MASTERS + SLAVES:
        assert cat(h, "/etc/mesos/zk").rstrip().endswith("/mesos2")
    assert re.search(r"^rolling restart of mesos-slave", fab("cluster", "--dry-run").stdout,
                     re.M) is None, "nothing left to restart"


def test_rolling_restart_of_every_service_keeps_the_cluster_up(long_task):
    before = {(h, s): service_start(h, s) for h in MASTERS
              for s in ("zookeeper", "mesos-master", "marathon")}
    before.update({(h, "mesos-slave"): service_start(h, "mesos-slave") for h in SLAVES})
    zk_leader = next(m for m in MASTERS if zk_mode(m) == "leader")
    dry = fab("rolling-restart", "--dry-run")
    assert dry.returncode == 0
    assert re.search(rf"^rolling restart of zookeeper, one host at a time, the leader last: "
                     rf".* -> {zk_leader} \(leader\);", dry.stdout, re.M), dry.stdout
    assert [k for k in before if service_start(*k) != before[k]] == [], "a dry run restarts nothing"

    watch, result, took = watched("rolling-restart")
    assert result.returncode == 0
    assert_kept_up(watch, long_task, zk_elections=1, marathon_leader_restarts=1)
    assert [k for k in before if service_start(*k) == before[k]] == [], "every service restarted"
    # ZooKeeper's leader restarted last (the containers share the machine's monotonic clock).
    started = {m: started_at(m, "zookeeper") for m in MASTERS}
    assert max(started, key=started.get) == zk_leader, started
    assert all(re.search(rf"^{m} wait-zookeeper ok$", result.stdout, re.M) for m in MASTERS)
    print(f"rolling restart of 3 masters (3 services each) and 3 agents: {took:.1f} s")


def test_start_services_on_one_master_restarts_it_alone_behind_its_gate(long_task):
    before = {m: service_start(m, "zookeeper") for m in MASTERS}
    tb.ssh("master2", "touch /var/lib/mesos-fab/restart/zookeeper")     # a restart owed
    result = fab("-H", "master2", "start-services")
    assert result.returncode == 0
    assert re.search(r"^master2 wait-zookeeper ok$", result.stdout, re.M)
    assert [m for m in MASTERS if service_start(m, "zookeeper") != before[m]] == ["master2"]


def test_a_gate_not_met_stops_the_roll_and_a_rerun_continues(long_task):
    """Marathon on the first master rolled refuses its flags (an unknown one): its gate times
    out, no further master is restarted; once the flag is gone a re-run finishes the roll."""
    edit_inventory(add_setting("gate_timeout = 8"))
    assert_cluster_healthy()    # every Marathon up (one cut off by a ZooKeeper restart is back)
    leader = (wait_for("a Marathon leader", lambda: next(
        (m for m in MASTERS if (http_leader(m) or "").startswith(ip(m) + ":")), None)))
    first = next(m for m in MASTERS if m != leader)
    tb.ssh(first, "echo 1 > /etc/marathon/conf/no_such_flag")
    before = {m: service_start(m, "marathon") for m in MASTERS}
    result = fab("rolling-restart", "--services", "marathon")
    assert result.returncode == 1
    assert re.search(rf"^{first} wait-marathon failed: restarted, but after 8 s: expected "
                     rf"Marathon on {first} answers /ping and /v2/leader names a leader; saw "
                     rf"{first} .*Connection refused", result.stdout, re.M), result.stdout
    assert [m for m in MASTERS if service_start(m, "marathon") != before[m]] == [first]
    assert "stopped at " + first + " wait-marathon" in result.stdout

    tb.ssh(first, "rm /etc/marathon/conf/no_such_flag")
    again = fab("start-services")
    assert again.returncode == 0, again.stdout
    assert all(service_start(m, "marathon") != before[m] for m in MASTERS)
    assert_cluster_healthy()


def started_at(host: str, service: str) -> int:
    out = tb.ssh(host, f"systemctl show -p ActiveEnterTimestampMonotonic {service}").stdout
    return int(out.strip().partition("=")[2])


def http_leader(master: str) -> str | None:
    return (try_json(master, 8080, "/v2/leader") or {}).get("leader")
