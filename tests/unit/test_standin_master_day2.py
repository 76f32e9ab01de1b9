"""The stand-in Mesos master and agent through day-2 operations, on loopback without ZooKeeper
(a master without --zk leads alone): maintenance through the real HTTP API, and agents that
restart (checkpoint recovery) or re-register with a restarted master. Failover through
ZooKeeper: test_standin_failover.py."""
import json
import os

import pytest

from testbed.standins.localrun import kill_checkpointed_tasks, standin, wait_port
from tests.unit.standins_local import Framework, free_port, get, loopback, post, wait

MASTER = loopback(31)
AGENTS = [loopback(32), loopback(33)]
LONG = "while true; do sleep 1; done"
WHEN = {"start": {"nanoseconds": 1_700_000_000_000_000_000},
        "duration": {"nanoseconds": 3_600_000_000_000}}


def machine(ip):
    return {"hostname": ip, "ip": ip}   # the agents announce their IP as hostname


@pytest.fixture
def cluster(tmp_path):
    """start("master") / start("agent", ip) run (or re-run) a daemon and wait until it
    listens; returns the process."""
    ports = {"master": free_port(MASTER), **{ip: free_port(ip) for ip in AGENTS}}
    procs = []

    def start(kind, ip=MASTER, ready=True):
        if kind == "master":
            args = ["mesos_master", [f"--ip={ip}", f"--port={ports['master']}",
                                     f"--work_dir={tmp_path / 'master'}"]]
        else:
            args = ["mesos_slave", [f"--master={MASTER}:{ports['master']}", f"--ip={ip}",
                                    f"--port={ports[ip]}", f"--work_dir={tmp_path / ip}",
                                    "--resources=cpus:1;mem:256"]]
        p = standin(*args, str(tmp_path / f"{kind}-{ip}-{len(procs)}.log"))
        procs.append(p)
        if ready:
            wait_port(ip, ports["master" if kind == "master" else ip])
        return p

    start.url = f"http://{MASTER}:{ports['master']}"
    start.agent_url = lambda ip: f"http://{ip}:{ports[ip]}"
    start.tmp = tmp_path
    try:
        yield start
    finally:
        for p in procs:
            p.stop()
        for ip in AGENTS:
            kill_checkpointed_tasks(tmp_path / ip)


def agent_ids(url):
    return {a["hostname"]: a["id"] for a in get(f"{url}/master/state")["slaves"]}


def task_pid(start, ip, task_id):
    for fw in get(f"{start.agent_url(ip)}/state")["frameworks"]:
        for ex in fw["executors"]:
            for t in ex["tasks"]:
                if t["id"] == task_id:
                    return t["pid"]
    return None


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_maintenance_endpoints_answer_with_the_real_codes_and_texts(cluster):
    cluster("master")
    url = cluster.url
    assert get(f"{url}/master/maintenance/schedule") == {}
    assert get(f"{url}/maintenance/status") == {}      # also without the /master prefix
    status, body, headers = post(f"{url}/master/maintenance/status", {})
    assert (status, body, headers["Allow"]) == (
        405, "Expecting one of { 'GET' }, but received 'POST'", "GET")
    status, body, _ = post(f"{url}/master/maintenance/schedule", raw=b'{"windows": [{}]}')
    assert (status, body) == (400, "Missing required fields: windows[0].unavailability")
    a, b = machine(AGENTS[0]), machine(AGENTS[1])
    sched = {"windows": [{"machine_ids": [a], "unavailability": WHEN}]}
    assert post(f"{url}/master/maintenance/schedule", sched)[0] == 200
    assert get(f"{url}/master/maintenance/schedule") == sched
    assert get(f"{url}/master/maintenance/status") == {"draining_machines": [{"id": a}]}
    status, body, _ = post(f"{url}/master/machine/down", [b])
    assert (status, body) == (400, f"Machine '{json.dumps(b, separators=(',', ':'))}' is not "
                                   "part of a maintenance schedule")
    status, body, _ = post(f"{url}/master/machine/up", [a])
    assert (status, body) == (400, f"Machine '{json.dumps(a, separators=(',', ':'))}' is not "
                                   "in DOWN mode and cannot be brought up")
    assert post(f"{url}/master/machine/down", [a])[0] == 200
    assert get(f"{url}/master/maintenance/status") == {"down_machines": [a]}
    status, body, _ = post(f"{url}/master/maintenance/schedule", {})
    assert (status, body) == (400, f"Machine '{json.dumps(a, separators=(',', ':'))}' is "
                                   "deactivated and cannot be removed from the schedule")
    assert post(f"{url}/master/machine/up", [a])[0] == 200
    assert get(f"{url}/master/maintenance/schedule") == {}   # up also leaves the schedule
    assert get(f"{url}/master/maintenance/status") == {}


def test_machine_down_loses_its_tasks_shuts_its_agent_and_refuses_it_until_up(cluster):
    cluster("master")
    url = cluster.url
    agent = cluster("agent", AGENTS[0])
    cluster("agent", AGENTS[1])
    ids = wait(lambda: len(agent_ids(url)) == 2 and agent_ids(url))
    fw = Framework(url)
    fw.launch(ids[AGENTS[0]], "long.1", LONG)
    wait(lambda: fw.tasks() == {"long.1": "TASK_RUNNING"})
    pid = task_pid(cluster, AGENTS[0], "long.1")
    a = machine(AGENTS[0])
    assert post(f"{url}/master/maintenance/schedule",
                {"windows": [{"machine_ids": [a], "unavailability": WHEN}]})[0] == 200
    assert post(f"{url}/master/machine/down", [a])[0] == 200

    assert fw.tasks() == {"long.1": "TASK_LOST"}
    assert agent_ids(url) == {AGENTS[1]: ids[AGENTS[1]]}
    lost = [u for u in fw.updates() if u["state"] == "TASK_LOST"]
    assert [(u["task_id"], u["reason"], u["source"], u["message"]) for u in lost] == [
        ("long.1", "REASON_SLAVE_REMOVED", "SOURCE_MASTER",
         f"Agent {AGENTS[0]} removed: Operator initiated 'Machine DOWN'")]
    # The agent shuts down: its task is killed, its identity forgotten, it exits 0.
    wait(lambda: not agent.alive(), what="the agent's exit")
    assert agent.popen.returncode == 0 and not alive(pid)
    assert "Machine DOWN" in agent.output()
    assert not (cluster.tmp / AGENTS[0] / "meta/slaves/latest").exists()

    # While the machine is DOWN a new start is refused, and that agent shuts down too.
    again = cluster("agent", AGENTS[0], ready=False)  # it may be gone before we look
    wait(lambda: not again.alive(), what="the refused agent's exit")
    assert again.popen.returncode == 0
    assert "because 'Machine is `DOWN`'" in again.output()
    assert AGENTS[0] not in agent_ids(url)

    assert post(f"{url}/master/machine/up", [a])[0] == 200
    cluster("agent", AGENTS[0])
    new_id = wait(lambda: agent_ids(url).get(AGENTS[0]), what="registration after up")
    assert new_id != ids[AGENTS[0]]


def one_running_task(cluster, task_id, cmd):
    """Master, one agent, a framework whose task runs there -> (master, agent, framework)."""
    master = cluster("master")
    agent = cluster("agent", AGENTS[0])
    aid = wait(lambda: agent_ids(cluster.url).get(AGENTS[0]))
    fw = Framework(cluster.url)
    fw.launch(aid, task_id, cmd)
    wait(lambda: fw.tasks() == {task_id: "TASK_RUNNING"})
    return master, agent, fw


def test_restarted_agent_reports_its_tasks_latest_state_to_a_restarted_master(cluster):
    """The issue's case: both restarted (a new ZooKeeper URL restarts everything); the task
    keeps its id and is TASK_RUNNING in the new master's state, not TASK_STAGING."""
    master, agent, fw = one_running_task(cluster, "long.1", LONG)
    aid = agent_ids(cluster.url)[AGENTS[0]]
    assert agent.stop() == 0 and master.stop() == 0
    cluster("master")
    cluster("agent", AGENTS[0])
    wait(fw.register)   # a new master: the framework registers again...
    wait(lambda: agent_ids(cluster.url).get(AGENTS[0]) == aid, what="re-registration")
    assert fw.tasks() == {"long.1": "TASK_RUNNING"}   # ...and finds its task as it is


def test_a_terminal_update_the_master_never_got_is_resent_after_the_agents_restart(cluster):
    master, agent, fw = one_running_task(cluster, "short.1", "sleep 2")
    master.stop()          # the task ends while no master can take its update
    wait(lambda: "TASK_FINISHED" in agent.output(), what="the task's end")
    agent.stop()
    cluster("agent", AGENTS[0])
    cluster("master")
    wait(fw.register)
    wait(lambda: fw.tasks() == {"short.1": "TASK_FINISHED"}, what="the resent update")
    assert not list((cluster.tmp / AGENTS[0]).glob("meta/slaves/*/tasks/short.1.json"))


def test_a_task_the_agent_does_not_know_is_dropped_when_it_re_registers(cluster):
    _, agent, fw = one_running_task(cluster, "long.1", LONG)
    agent.stop()
    # The agent loses the task (its checkpoint and process gone) before it comes back.
    kill_checkpointed_tasks(cluster.tmp / AGENTS[0])
    for f in (cluster.tmp / AGENTS[0]).glob("meta/slaves/*/tasks/long.1.json"):
        f.unlink()
    cluster("agent", AGENTS[0])
    wait(lambda: fw.tasks() == {"long.1": "TASK_DROPPED"}, what="reconciliation")
    dropped = [u for u in fw.updates() if u["state"] == "TASK_DROPPED"]
    assert [(u["reason"], u["message"]) for u in dropped] == [
        ("REASON_RECONCILIATION", "Reconciliation: task unknown to the agent")]
