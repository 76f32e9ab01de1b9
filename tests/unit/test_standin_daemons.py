"""Stand-in Mesos master and agent on loopback without ZooKeeper (test equipment).

A master without --zk is its own leader (Mesos' standalone mode), which is enough to check the
HTTP API, task sandboxes, kill, and the agent's checkpoint rules without a ZooKeeper.
"""
import time

import pytest

from testbed.standins import common
from testbed.standins.localrun import kill_checkpointed_tasks, standin, wait_port
from tests.unit.standins_local import loopback

MASTER = loopback(2)
AGENT = loopback(52)
MPORT, APORT = 15050, 15051


def get(url):
    status, body, headers = common.call("GET", url)
    return status, body


def wait(predicate, timeout=15.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


@pytest.fixture
def cluster(tmp_path):
    procs = []

    def agent(*extra):
        p = standin("mesos_slave", [f"--master={MASTER}:{MPORT}", f"--ip={AGENT}",
                                    f"--port={APORT}", f"--work_dir={tmp_path / 'agent'}",
                                    *extra], str(tmp_path / f"agent{len(procs)}.log"))
        procs.append(p)
        return p

    master = standin("mesos_master", [f"--ip={MASTER}", f"--port={MPORT}",
                                      f"--work_dir={tmp_path / 'master'}"],
                     str(tmp_path / "master.log"))
    procs.append(master)
    wait_port(MASTER, MPORT)
    try:
        yield master, agent, tmp_path
    finally:
        for p in procs:
            p.stop()
        kill_checkpointed_tasks(tmp_path / "agent")


def registered_agents():
    return get(f"http://{MASTER}:{MPORT}/master/state")[1]["slaves"]


def test_master_endpoints(cluster):
    status, state = get(f"http://{MASTER}:{MPORT}/master/state")
    assert status == 200
    assert state["pid"] == f"master@{MASTER}:{MPORT}" == state["leader"]
    assert state["leader_info"]["hostname"] == MASTER and "elected_time" in state
    assert state["flags"]["quorum"] == "1" and state["flags"]["work_dir"].endswith("master")
    assert get(f"http://{MASTER}:{MPORT}/state")[1]["id"] == state["id"]
    assert get(f"http://{MASTER}:{MPORT}/master/health") == (200, "")
    metrics = get(f"http://{MASTER}:{MPORT}/metrics/snapshot")[1]
    assert metrics["master/elected"] == 1.0 and metrics["registrar/log/recovered"] == 1.0
    status, _, headers = common.raw_call("GET", f"http://{MASTER}:{MPORT}/master/redirect")
    assert status == 307 and headers["Location"] == f"//{MASTER}:{MPORT}"


def test_agent_registers_runs_a_task_in_its_sandbox_and_kills_it(cluster):
    master, agent, tmp = cluster
    agent("--resources=cpus:2;mem:1024", "--attributes=rack:r1")
    slaves = wait(registered_agents)
    assert slaves[0]["resources"]["cpus"] == 2 and slaves[0]["attributes"] == {"rack": "r1"}
    assert slaves[0]["pid"] == f"slave(1)@{AGENT}:{APORT}"
    fid = common.call("POST", f"http://{MASTER}:{MPORT}/standin/register_framework",
                      {"name": "test"})[1]["framework_id"]
    for tid, cmd in (("once.1", "echo hello"), ("long.1", "sleep 60")):
        status, body, _ = common.call("POST", f"http://{MASTER}:{MPORT}/standin/launch", {
            "framework_id": fid, "agent_id": slaves[0]["id"], "task": {
                "task_id": tid, "name": tid, "command": {"value": cmd},
                "resources": {"cpus": 0.1, "mem": 16}}})
        assert status == 200, body

    def tasks():
        fw = get(f"http://{MASTER}:{MPORT}/master/state")[1]["frameworks"][0]
        return {t["id"]: t["state"] for t in fw["tasks"] + fw["completed_tasks"]}
    wait(lambda: tasks() == {"once.1": "TASK_FINISHED", "long.1": "TASK_RUNNING"})
    sandbox = (tmp / "agent/slaves" / slaves[0]["id"] / "frameworks" / fid / "executors" /
               "once.1" / "runs")
    assert (sandbox / "latest" / "stdout").read_text() == "hello\n"
    common.call("POST", f"http://{MASTER}:{MPORT}/standin/kill",
                {"framework_id": fid, "task_id": "long.1"})
    wait(lambda: tasks()["long.1"] == "TASK_KILLED")
    state = get(f"http://{AGENT}:{APORT}/state")[1]
    assert state["id"] == slaves[0]["id"] and state["master_hostname"] == MASTER
    assert get(f"http://{AGENT}:{APORT}/metrics/snapshot")[1]["slave/registered"] == 1.0


def test_agent_restart_keeps_its_id_and_refuses_changed_resources(cluster):
    master, agent, tmp = cluster
    first = agent("--resources=cpus:2;mem:1024")
    agent_id = wait(registered_agents)[0]["id"]
    assert (tmp / "agent/meta/slaves/latest").resolve().name == agent_id
    assert first.stop() == 0
    second = agent("--resources=cpus:2;mem:1024")
    wait(lambda: _up() and get(f"http://{AGENT}:{APORT}/state")[1]["id"] == agent_id)
    assert second.stop() == 0
    # A restart with other resources is refused until meta/slaves/latest is removed.
    changed = agent("--resources=cpus:4;mem:1024")
    wait(lambda: not changed.alive())
    assert changed.popen.returncode == 1
    out = changed.output()
    assert "Failed to perform recovery: Incompatible agent info detected." in out
    assert f"rm -f {tmp / 'agent'}/meta/slaves/latest" in out
    (tmp / "agent/meta/slaves/latest").unlink()
    agent("--resources=cpus:4;mem:1024")
    wait(lambda: _up() and get(f"http://{AGENT}:{APORT}/state")[1]["id"] not in ("", agent_id))


def _up():
    try:
        return get(f"http://{AGENT}:{APORT}/health")[0] == 200
    except OSError:
        return False
