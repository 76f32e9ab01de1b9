"""`fab cluster-status` on the testbed: exit 0 on the healthy cluster, 1 with an agent down and
with a master's host down, each naming what is down; the cluster is put back afterwards.

Runs on its own (it brings the testbed up and runs `fab cluster` when needed) or after the
other modules. The faults are real (a stopped mesos-slave, a powered-off host) and are checked
through the daemons themselves (`srvr`, Mesos' HTTP API), not through the code under test.
"""

from __future__ import annotations

import json
import re

import pytest

from testbed import hosts as tb
from tests.integration.conftest import (MASTERS, SLAVES, active_agents, fab, ip, mesos_leader,
                                        try_json, wait_for, zk_mode)
from tests.integration.test_cluster import assert_cluster_healthy


@pytest.fixture(scope="module")
def healthy_cluster():
    if tb.load_state() is None:
        tb.up()
    assert fab("cluster").returncode == 0
    assert_cluster_healthy()


def cluster_status(*args):
    return fab("cluster-status", *args, timeout=60)


def healthy_status():
    """An app deployed by an earlier module (hello2 ends every 10 s and is started again) can
    be caught between two tasks: ask again until the verdict is healthy."""
    result = cluster_status("--json")
    return result if result.returncode == 0 else None


def test_healthy_cluster_exits_0_and_reports_what_the_daemons_say(healthy_cluster):
    report = json.loads(wait_for("cluster-status exit 0", healthy_status, timeout=30).stdout)
    assert report["verdict"] == "healthy" and report["findings"] == []
    zk_modes = {m: zk_mode(m) for m in MASTERS}
    assert {m: v["mode"] for m, v in report["zookeeper"]["members"].items()} == zk_modes
    assert report["zookeeper"]["synced_followers"] == 2
    assert report["mesos"]["leader"] == mesos_leader()
    assert sorted(ip(s) for s in report["mesos"]["agents"]["active"]) == active_agents(mesos_leader())
    assert report["marathon"]["leader"] == try_json("master1", 8080, "/v2/leader")["leader"]
    text = cluster_status()
    assert text.returncode == 0 and text.stdout.startswith("HEALTHY\n")


def test_agent_down_is_degraded_and_named(healthy_cluster):
    assert tb.ssh("slave1", "systemctl stop mesos-slave").returncode == 0
    try:
        wait_for("slave1 inactive on the Mesos leader",
                 lambda: ip("slave1") not in active_agents(mesos_leader()), timeout=30)
        result = cluster_status()
        assert result.returncode == 1
        assert result.stdout.startswith("DEGRADED: ")
        assert re.search(r"^  degraded  mesos +slave1: agent not active", result.stdout, re.M)
    finally:
        assert tb.ssh("slave1", "systemctl start mesos-slave").returncode == 0
    wait_for("slave1 active again", lambda: ip("slave1") in active_agents(mesos_leader()),
             timeout=60)


def test_master_host_down_is_degraded_and_named(healthy_cluster):
    # A master that does not lead Mesos: the check then needs no Mesos failover to settle.
    victim = next(m for m in reversed(MASTERS) if m != mesos_leader())
    tb.stop_host(victim)
    try:
        def degraded():
            result = cluster_status()
            return result if result.returncode == 1 else None

        result = wait_for(f"cluster-status exit 1 with {victim} down", degraded, timeout=60)
        for component in ("zookeeper", "mesos", "marathon"):
            assert re.search(rf"^  degraded  {component} +{victim}: ", result.stdout, re.M), component
        assert re.search(rf"^zookeeper .*{victim} unreachable", result.stdout, re.M)
    finally:
        tb.start_host(victim)
    assert fab("cluster").returncode == 0
    assert_cluster_healthy()
    wait_for("cluster-status exit 0 again", healthy_status, timeout=60)
