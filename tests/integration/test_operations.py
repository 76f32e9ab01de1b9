"""Day-2 operations on the testbed, as their runbooks (runbooks/) do them, checked through the
daemons (ZooKeeper `srvr`, Mesos' and Marathon's HTTP APIs), ssh and pollers in threads.

In file order, on a testbed of its own with a long-running app:
- an agent is added with `fab -H slave4 slave`: nothing else restarts;
- `fab -H <agent> drain-agent` leaves the app's task running on another agent when it returns,
  and `agent-up` brings the agent back, active and given work again;
- `fab upgrade` installs the newer mesos and marathon: the masters one at a time, each
  service's leader last, then the agents, the app's task kept;
- a failed master is replaced by a new host with its myid: `fab cluster` converges without
  the ZooKeeper quorum ever lost, the app keeps running, every host's files name the new
  master, and a re-run changes nothing.
"""

from __future__ import annotations

import ipaddress

import pytest
import requests

from testbed import config as tb_config
from testbed import hosts as tb
from tests.integration.conftest import (MASTERS, SLAVES, active_agents, cat, fab, ip,
                                        mesos_leader, service_start, try_json, wait_for, zk_mode)
from tests.integration.test_cluster import assert_cluster_healthy, recap_changed
from tests.integration.test_rolling import assert_kept_up, started_at, watched
from tests.integration.test_standins_day2 import add_setting, deploy, edit_inventory, marathon_tasks

LOOP = "while true; do sleep 1; done"
# Marathon 1.4 replaces a task of a DOWN machine after unreachableStrategy.inactiveAfterSeconds
# (300 s by default): this app says 0, as an operator who drains machines would.
LONG = {"id": "long", "cmd": LOOP, "cpus": 0.1, "mem": 16,
        "unreachableStrategy": {"inactiveAfterSeconds": 0, "expungeAfterSeconds": 0}}
AGENTS = [*SLAVES, "slave4"]


@pytest.fixture(scope="module")
def long_task(tmp_path_factory):
    tb.down(log=lambda *a: None)
    tb.up()
    assert fab("cluster").returncode == 0
    assert_cluster_healthy()
    return deploy(tmp_path_factory.mktemp("apps"), LONG)


def starts(hosts) -> dict:
    return {(h, s): service_start(h, s) for h in hosts for s in (
        ("zookeeper", "mesos-master", "marathon") if h.startswith("master") else ("mesos-slave",))}


def running_task() -> dict:
    return wait_for("the long task running", lambda: (marathon_tasks("/long") or [None])[0])


def host_of(address: str) -> str:
    return next(h for h in [*MASTERS, *AGENTS] if ip(h) == address)


def test_an_added_agent_joins_and_nothing_else_restarts(long_task):
    before = starts(MASTERS + SLAVES)
    added = fab("testbed.add-host", "--name", "slave4", "--role", "slave")
    assert added.returncode == 0
    edit_inventory(lambda text: text.rstrip("\n") + "\n" + added.stdout.strip().splitlines()[-1]
                   + "\n")
    result = fab("-H", "slave4", "slave")
    assert result.returncode == 0
    wait_for("slave4 active", lambda: ip("slave4") in active_agents(mesos_leader() or MASTERS[0]))
    assert starts(MASTERS + SLAVES) == before, "only slave4 changed"
    again = fab("cluster")
    assert again.returncode == 0 and not any(recap_changed(again.stdout).values())
    assert starts(MASTERS + SLAVES) == before


def test_drain_moves_the_task_and_agent_up_brings_the_agent_back(long_task, tmp_path):
    task = running_task()
    agent = host_of(task["host"])
    machine = {"hostname": task["host"], "ip": task["host"]}
    result = fab("-H", agent, "drain-agent")
    assert result.returncode == 0
    # When drain-agent returns, the task already runs on another agent.
    moved = [t for t in marathon_tasks("/long") or [] if t["state"] == "TASK_RUNNING"]
    assert len(moved) == 1 and moved[0]["host"] != task["host"], moved
    assert f"{agent}: {task['id']} -> {moved[0]['id']} on {moved[0]['host']}" in result.stdout
    leader = mesos_leader()
    base = f"http://{ip(leader)}:5050/master"
    assert requests.get(f"{base}/maintenance/status", timeout=5).json()["down_machines"] == \
        [machine]
    assert task["host"] not in active_agents(leader)

    up = fab("-H", agent, "agent-up")
    assert up.returncode == 0
    assert task["host"] in active_agents(mesos_leader())
    assert requests.get(f"{base}/maintenance/schedule", timeout=5).json() == {}
    # Given work again: an app needing 1.5 of each agent's 2 cpus has one task on every agent.
    agents = active_agents(mesos_leader())
    deploy(tmp_path, {"id": "fill", "cmd": LOOP, "cpus": 1.5, "mem": 16,
                      "instances": len(agents)})
    hosts = wait_for("a fill task on every agent", lambda: (lambda ts: sorted(
        t["host"] for t in ts) if len(ts) == len(agents) else None)(marathon_tasks("/fill") or []))
    assert hosts == sorted(agents) and task["host"] in hosts
    requests.delete(f"http://{ip(MASTERS[0])}:8080/v2/apps/fill", timeout=10)
    wait_for("/fill gone", lambda: marathon_tasks("/fill") is None)


def test_upgrade_rolls_masters_one_at_a_time_then_the_agents(long_task):
    assert_cluster_healthy(agents=len(AGENTS))
    newer = tb.load_state()["repo"]["newer"]
    edit_inventory(add_setting(f"master_packages = mesosphere mesos={newer['mesos']} "
                               f"marathon={newer['marathon']}"))
    edit_inventory(add_setting(f"slave_packages = mesos={newer['mesos']}"))
    task = running_task()
    leaders = {"mesos-master": mesos_leader(),
               "marathon": host_of(try_json(MASTERS[0], 8080, "/v2/leader")["leader"][:-5])}
    watch, result, took = watched("upgrade")
    assert result.returncode == 0
    assert_kept_up(watch, task, zk_elections=0, marathon_leader_restarts=1)
    for h in [*MASTERS, *AGENTS]:
        assert tb.ssh(h, "dpkg-query -W -f '${Version}' mesos").stdout == newer["mesos"], h
    for m in MASTERS:
        assert tb.ssh(m, "dpkg-query -W -f '${Version}' marathon").stdout == newer["marathon"]
        assert (try_json(m, 5050, "/version") or {}).get("version") == newer["mesos"].split("-")[0]
    for service, leader in leaders.items():
        started = {m: started_at(m, service) for m in MASTERS}
        assert max(started, key=started.get) == leader, (service, started)
    agents = {s: started_at(s, "mesos-slave") for s in AGENTS}
    assert min(agents.values()) > max(started_at(m, "marathon") for m in MASTERS), \
        "the agents after the masters"
    print(f"upgrade of 3 masters and {len(AGENTS)} agents: {took:.1f} s")
    assert_cluster_healthy(agents=len(AGENTS))
    again = fab("cluster")
    assert again.returncode == 0 and not any(recap_changed(again.stdout).values())


def test_a_failed_master_is_replaced_by_a_new_host_with_its_myid(long_task):
    task = running_task()
    old = ip("master3")
    tb.remove_host("master3", log=lambda *a: None)             # the host is gone
    wait_for("two ZooKeepers serving", lambda: sorted(zk_mode(m) for m in MASTERS[:2])
             in (["follower", "leader"],) or None)
    subnet = tb.load_state()["subnet"]
    new = str(next(a for a in ipaddress.ip_network(subnet).hosts()
                   if str(a) not in [h["ip"] for h in tb.load_state()["hosts"]] + [old]))
    tb.add_host("master3", "master", ip=new, myid=3, log=lambda *a: None)
    edit_inventory(lambda text: text.replace(f"master3 ip={old} myid=3", f"master3 ip={new} myid=3"))

    watch, result, took = watched("cluster")
    assert result.returncode == 0
    assert watch.zookeeper.majority_down() == [], "the quorum was lost"
    gaps = watch.zookeeper.without_quorum()
    assert len(gaps) <= 1 and all(g < 2 for g in gaps), gaps   # the survivors' leader, last
    assert [t["id"] for t in marathon_tasks("/long")] == [task["id"]], "the app kept running"
    url = f"zk://{ip('master1')}:2181,{ip('master2')}:2181,{new}:2181/mesos"
    for h in [*MASTERS, *AGENTS]:
        assert cat(h, "/etc/mesos/zk") == url + "\n", h
    for m in MASTERS:
        assert f"server.3={new}:2888:3888" in cat(m, "/etc/zookeeper/conf/zoo.cfg")
        assert cat(m, "/etc/marathon/conf/master") == url + "\n"
    assert sorted(zk_mode(m) for m in MASTERS) == ["follower", "follower", "leader"]
    print(f"master replacement converged in {took:.1f} s; {watch.summary()}")
    assert_cluster_healthy(agents=len(AGENTS))
    again = fab("cluster")
    assert again.returncode == 0 and not any(recap_changed(again.stdout).values())
