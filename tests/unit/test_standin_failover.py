"""Stand-in Mesos masters failing over through a real ZooKeeper (test equipment): the agents
re-register and the new leader knows their tasks as they are; the maintenance schedule
survives; a new ZooKeeper URL (everything restarted) keeps the tasks; non-leaders redirect
and a master without a leader answers 503. Needs Debian's `zookeeper` package."""
import pytest

from testbed.standins import common
from testbed.standins.localrun import (kill_checkpointed_tasks, standin, start_zookeeper,
                                       wait_port, zookeeper_available)
from tests.unit.standins_local import Framework, free_port, get, loopback, post, wait

pytestmark = pytest.mark.skipif(not zookeeper_available(),
                                reason="needs Debian's zookeeper package (apt-get install zookeeper)")
MASTERS = [loopback(41), loopback(42), loopback(43)]
AGENT = loopback(44)
LONG = "while true; do sleep 1; done"


@pytest.fixture
def cluster(tmp_path):
    zk_port = free_port()
    zk = start_zookeeper(tmp_path / "zk", zk_port)
    ports = {ip: free_port(ip) for ip in MASTERS + [AGENT]}
    procs = {}

    def start(name, path="/mesos"):
        """(Re)start master <ip> or the agent, on the ZooKeeper path `path`."""
        url = f"zk://127.0.0.1:{zk_port}{path}"
        if name == AGENT:
            args = ["mesos_slave", [f"--master={url}", f"--ip={AGENT}",
                                    f"--port={ports[AGENT]}", f"--work_dir={tmp_path / 'a'}",
                                    "--resources=cpus:1;mem:256"]]
        else:
            args = ["mesos_master", [f"--zk={url}", "--quorum=2", f"--ip={name}",
                                     f"--port={ports[name]}", f"--work_dir={tmp_path / name}"]]
        procs[name] = standin(*args, str(tmp_path / f"{name}-{len(procs)}.log"))
        wait_port(name, ports[name])

    start.url = lambda ip: f"http://{ip}:{ports[ip]}"
    start.procs = procs
    start.tmp = tmp_path
    try:
        for name in MASTERS + [AGENT]:
            start(name)
        yield start
    finally:
        for p in procs.values():
            p.stop()
        zk.stop()
        kill_checkpointed_tasks(tmp_path / "a")


def leader(cluster, masters=MASTERS):
    elected = [ip for ip in masters
               if get(f"{cluster.url(ip)}/metrics/snapshot")["master/elected"] == 1.0]
    return elected[0] if len(elected) == 1 else None


def agent_id(cluster, ip):
    slaves = get(f"{cluster.url(ip)}/master/state")["slaves"]
    return slaves[0]["id"] if slaves and slaves[0]["active"] else None


def running_task(cluster):
    """A framework with one long task on the agent, as the leader sees it."""
    first = wait(lambda: leader(cluster), what="a leader")
    aid = wait(lambda: agent_id(cluster, first), what="the agent's registration")
    fw = Framework(cluster.url(first))
    fw.launch(aid, "long.1", LONG)
    wait(lambda: fw.tasks() == {"long.1": "TASK_RUNNING"})
    return first, fw


def test_non_leaders_redirect_and_a_master_without_leader_answers_503(cluster):
    first = wait(lambda: leader(cluster))
    other = next(ip for ip in MASTERS if ip != first)

    def answer_once_it_knows_the_leader():
        # A master answers 503 until it has read the leader's ZooKeeper node, as Mesos does.
        answer = common.raw_call("GET", f"{cluster.url(other)}/master/maintenance/status?jsonp=x")
        return answer if answer[0] != 503 else None

    status, _, headers = wait(answer_once_it_knows_the_leader, what=f"{other} to know the leader")
    host, port = cluster.url(first).split("//")[1].split(":")
    assert (status, headers["Location"]) == (
        307, f"//{host}:{port}/master/maintenance/status?jsonp=x")
    status, _, headers = post(f"{cluster.url(other)}/machine/down", [])
    assert (status, headers["Location"]) == (307, f"//{host}:{port}/machine/down")
    # A master that cannot reach ZooKeeper knows no leader.
    lonely = loopback(45)
    port = free_port(lonely)
    p = standin("mesos_master", [f"--zk=zk://127.0.0.1:{free_port()}/mesos", "--quorum=1",
                                 f"--ip={lonely}", f"--port={port}",
                                 f"--work_dir={cluster.tmp / 'lonely'}"],
                str(cluster.tmp / "lonely.log"))
    try:
        wait_port(lonely, port)
        status, body, _ = common.raw_call("GET", f"http://{lonely}:{port}/master/state")
        assert (status, body) == (503, b"No leader elected")
    finally:
        p.stop()


def test_after_a_failover_the_new_leader_knows_the_task_and_the_schedule(cluster):
    first, fw = running_task(cluster)
    machine = {"hostname": AGENT, "ip": AGENT}
    sched = {"windows": [{"machine_ids": [machine], "unavailability": {
        "start": {"nanoseconds": 10**18}}}]}
    assert post(f"{cluster.url(first)}/master/maintenance/schedule", sched)[0] == 200
    cluster.procs[first].kill()
    survivors = [ip for ip in MASTERS if ip != first]
    second = wait(lambda: leader(cluster, survivors), timeout=30, what="a new leader")
    wait(lambda: agent_id(cluster, second), what="the agent's re-registration")
    fw.url = cluster.url(second)
    wait(fw.register)
    assert fw.tasks() == {"long.1": "TASK_RUNNING"}
    assert get(f"{cluster.url(second)}/master/maintenance/schedule") == sched
    assert get(f"{cluster.url(second)}/master/maintenance/status") == {
        "draining_machines": [{"id": machine}]}


def test_a_new_zookeeper_url_everywhere_keeps_the_task_running(cluster):
    """The issue's report: masters, then the agent, restarted on a new path."""
    _, fw = running_task(cluster)
    for ip in MASTERS:
        cluster.procs[ip].stop()
        cluster(ip, "/mesos2")
    cluster.procs[AGENT].stop()
    cluster(AGENT, "/mesos2")
    second = wait(lambda: leader(cluster), what="a leader on the new path")
    wait(lambda: agent_id(cluster, second), what="the agent's re-registration")
    fw.url = cluster.url(second)
    wait(fw.register)
    assert fw.tasks() == {"long.1": "TASK_RUNNING"}
    log = cluster.procs[AGENT].output()
    assert "Recovered agent" in log and "with 1 live task(s)" in log
