"""The test equipment through day-2 operations, on the testbed (the stand-ins installed from the
testbed's repository, on real hosts with systemd and ZooKeeper): what later operations (rolling
restarts, drain, upgrade, master replacement) are proven against must itself stay truthful.

In file order, on a testbed of its own: a long-running task survives a new ZooKeeper URL applied
by `fab cluster` (same id, TASK_RUNNING in the master's state and in Marathon); a machine taken
DOWN through Mesos' maintenance API has its task relaunched elsewhere and its agent back after
/machine/up; hosts are added to and removed from the running testbed; the mesos package is
upgraded on one agent. Checked through HTTP, ZooKeeper-independent probes and ssh.
"""

from __future__ import annotations

import json
import re
import time

import requests

from testbed import config as tb_config
from testbed import hosts as tb
from testbed import net as tb_net
from tests.integration.conftest import (MASTERS, SLAVES, active_agents, cat, fab, ip,
                                        mesos_leader, try_json, wait_for)

LOOP = "while true; do sleep 1; done"


def edit_inventory(change) -> None:
    """Edit the testbed's inventory as an operator would: text in, text out."""
    path = tb_config.INVENTORY
    path.write_text(change(path.read_text()))


def add_setting(line: str):
    return lambda text: text.replace("[all:vars]\n", f"[all:vars]\n{line}\n", 1)


def deploy(tmp_path, app: dict) -> dict:
    definition = tmp_path / f"{app['id']}.json"
    definition.write_text(json.dumps(app))
    assert fab("deploy-app", "--file", str(definition)).returncode == 0
    return wait_for(f"{app['id']} running", lambda: (marathon_tasks(app["id"]) or [None])[0])


def marathon_tasks(app_id: str) -> list[dict] | None:
    for m in MASTERS:
        app = (try_json(m, 8080, f"/v2/apps/{app_id}") or {}).get("app")
        if app is not None:
            return [t for t in app["tasks"] if t["state"] == "TASK_RUNNING"]
    return None


def master_task(leader: str, task_id: str) -> str | None:
    """The task's state in the Mesos master's /master/state (None: not listed)."""
    state = try_json(leader, 5050, "/master/state") or {}
    for fw in state.get("frameworks", []):
        for key in ("tasks", "unreachable_tasks", "completed_tasks"):
            for t in fw.get(key, []):
                if t["id"] == task_id:
                    return t["state"]
    return None


def host_of(address: str) -> str:
    return next(h for h in MASTERS + SLAVES if ip(h) == address)


def test_a_fresh_cluster():
    tb.down(log=lambda *a: None)
    tb.up()
    assert fab("cluster").returncode == 0
    wait_for("three active agents", lambda: len(active_agents(mesos_leader() or MASTERS[0])) == 3)


def test_a_new_zookeeper_url_keeps_the_long_running_task(tmp_path):
    task = deploy(tmp_path, {"id": "long", "cmd": LOOP, "cpus": 0.1, "mem": 16})
    agent = host_of(task["host"])
    edit_inventory(add_setting("zk_mesos_path = /mesos2"))
    assert fab("cluster").returncode == 0
    for h in MASTERS + SLAVES:
        assert cat(h, "/etc/mesos/zk").rstrip().endswith("/mesos2")
    leader = wait_for("a Mesos leader on /mesos2", mesos_leader)
    wait_for("the task in the new master's state, running",
             lambda: master_task(leader, task["id"]) == "TASK_RUNNING")
    wait_for("Marathon's view", lambda: [t["id"] for t in marathon_tasks("/long") or []]
             == [task["id"]])
    journal = tb.ssh(agent, "journalctl -u mesos-slave --no-pager").stdout
    assert "with 1 live task(s)" in journal and "Re-registered with master" in journal
    # The task's process never stopped: the pid the agent recorded before still runs.
    state = requests.get(f"http://{task['host']}:5051/state", timeout=5).json()
    pid = next(t["pid"] for f in state["frameworks"] for e in f["executors"]
               for t in e["tasks"] if t["id"] == task["id"])
    assert tb.ssh(agent, f"kill -0 {pid}").returncode == 0
    requests.delete(f"http://{ip(MASTERS[0])}:8080/v2/apps/long", timeout=10)


def test_machine_down_relaunches_the_task_elsewhere_and_up_brings_the_agent_back(tmp_path):
    # Marathon 1.4 replaces a task of a DOWN machine only after the app's
    # unreachableStrategy.inactiveAfterSeconds (300 s by default): this app says 0.
    task = deploy(tmp_path, {"id": "drain", "cmd": LOOP, "cpus": 0.1, "mem": 16,
                             "unreachableStrategy": {"inactiveAfterSeconds": 0,
                                                     "expungeAfterSeconds": 0}})
    machine = {"hostname": task["host"], "ip": task["host"]}
    leader = wait_for("a Mesos leader", mesos_leader)
    other = next(m for m in MASTERS if m != leader)
    r = requests.get(f"http://{ip(other)}:5050/master/maintenance/schedule",
                     allow_redirects=False, timeout=5)
    assert r.status_code == 307 and r.headers["Location"] == \
        f"//{ip(leader)}:5050/master/maintenance/schedule"
    base = f"http://{ip(leader)}:5050/master"
    schedule = {"windows": [{"machine_ids": [machine], "unavailability": {
        "start": {"nanoseconds": time.time_ns()}, "duration": {"nanoseconds": 3600 * 10**9}}}]}
    assert requests.post(f"{base}/maintenance/schedule", json=schedule, timeout=5) \
        .status_code == 200
    r = requests.post(f"{base}/machine/up", json=[machine], timeout=5)
    assert (r.status_code, r.text) == (400, f"Machine '{json.dumps(machine, separators=(',', ':'))}"
                                            "' is not in DOWN mode and cannot be brought up")
    assert requests.post(f"{base}/machine/down", json=[machine], timeout=5).status_code == 200

    moved = wait_for("the task relaunched on another agent",
                     lambda: [t for t in marathon_tasks("/drain") or [] if t["id"] != task["id"]])
    assert moved[0]["host"] != task["host"]
    assert master_task(leader, task["id"]) == "TASK_LOST"
    assert task["host"] not in active_agents(leader)
    assert requests.get(f"{base}/maintenance/status", timeout=5).json() == {
        "down_machines": [machine]}
    drained = host_of(task["host"])
    journal = tb.ssh(drained, "journalctl -u mesos-slave --no-pager").stdout
    assert "because 'Operator initiated 'Machine DOWN''" in journal

    assert requests.post(f"{base}/machine/up", json=[machine], timeout=5).status_code == 200
    assert requests.get(f"{base}/maintenance/schedule", timeout=5).json() == {}
    # systemd starts the agent again (RestartSec=20); it registers as a new agent.
    wait_for("the agent active again", lambda: task["host"] in active_agents(leader),
             timeout=60)


def test_hosts_are_added_to_and_removed_from_the_running_testbed():
    added = fab("testbed.add-host", "--name", "slave4", "--role", "slave")
    assert added.returncode == 0
    line = added.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"slave4 ip=\S+", line) and ip("slave4") == line.split("=")[1]
    assert "slave4" not in tb_config.INVENTORY.read_text()   # the operator's to add
    edit_inventory(lambda text: text.rstrip("\n") + f"\n{line}\n")
    assert fab("-H", "slave4", "slave").returncode == 0
    leader = wait_for("a Mesos leader", mesos_leader)
    wait_for("slave4 active", lambda: ip("slave4") in active_agents(leader))
    # A plain install on a fresh host takes the current release, not the newer one.
    assert tb.ssh("slave4", "dpkg-query -W -f '${Version}' mesos").stdout == "1.4.1-2.0.1"

    master = fab("testbed.add-host", "--name", "master4", "--role", "master")
    assert master.returncode == 0
    assert master.stdout.strip().splitlines()[-1] == f"master4 ip={ip('master4')} myid=4"
    assert tb.ssh("master4", "hostname").stdout.strip() == "master4"

    # Retired as an operator retires an agent: its machine DOWN (the master forgets the agent
    # at once, rather than listing it inactive for the 75 s of ping timeouts), the host gone,
    # then the machine UP again, which clears it from the schedule.
    slave4 = ip("slave4")
    machine = {"hostname": slave4, "ip": slave4}
    base = f"http://{ip(leader)}:5050/master"
    assert requests.post(f"{base}/maintenance/schedule", timeout=5, json={"windows": [{
        "machine_ids": [machine], "unavailability": {"start": {"nanoseconds": time.time_ns()}}
    }]}).status_code == 200
    assert requests.post(f"{base}/machine/down", json=[machine], timeout=5).status_code == 200
    assert slave4 not in [s["hostname"] for s in try_json(leader, 5050, "/master/state")["slaves"]]
    for name in ("slave4", "master4"):
        address = ip(name)
        assert fab("testbed.remove-host", "--name", name).returncode == 0
        assert name not in [h["name"] for h in tb.load_state()["hosts"]]
        assert tb.ssh("master1", f"ping -c1 -W1 {address}").returncode != 0
    assert not [ns for ns in tb_net.netns_names() if ns.endswith(("-slave4", "-master4"))]
    assert requests.post(f"{base}/machine/up", json=[machine], timeout=5).status_code == 200
    assert requests.get(f"{base}/maintenance/schedule", timeout=5).json() == {}
    edit_inventory(lambda text: text.replace(line + "\n", ""))


def test_the_mesos_package_is_upgraded_on_one_agent_only_when_asked():
    agent = "slave1"
    def version():
        return tb.ssh(agent, "dpkg-query -W -f '${Version}' mesos").stdout
    assert version() == "1.4.1-2.0.1"
    policy = tb.ssh(agent, "apt-cache policy mesos").stdout
    assert "Candidate: 1.4.1-2.0.1" in policy and "1.4.2-2.0.1" in policy
    assert "Inst mesos" not in tb.ssh(agent, "apt-get -s upgrade").stdout
    r = tb.ssh(agent, "DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
                      "-o Dpkg::Options::=--force-confold mesos=1.4.2-2.0.1 "
                      "&& systemctl restart mesos-slave", timeout=120)
    assert r.returncode == 0, r.stderr
    assert version() == "1.4.2-2.0.1"
    assert cat(agent, "/etc/mesos/zk").rstrip().endswith("/mesos2")   # conffile kept
    wait_for("the agent reporting 1.4.2", lambda: (try_json(agent, 5051, "/version") or {})
             .get("version") == "1.4.2")
    leader = wait_for("a Mesos leader", mesos_leader)
    wait_for("the master listing the agent at 1.4.2", lambda: any(
        s["hostname"] == ip(agent) and s["version"] == "1.4.2" and s["active"]
        for s in (try_json(leader, 5050, "/master/state") or {}).get("slaves", [])))
    assert (try_json(leader, 5050, "/version") or {}).get("version") == "1.4.1"
    assert tb.ssh("slave2", "dpkg-query -W -f '${Version}' mesos").stdout == "1.4.1-2.0.1"
