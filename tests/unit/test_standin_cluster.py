"""The whole stand-in cluster on loopback with a real ZooKeeper (test equipment).

3 masters (.1-.3 of a loopback /24, quorum 2), 2 agents (.51-.52), 3 Marathons: the tutorial's hello
app runs, prints `hello` in its sandbox and is restarted; killing the leading master elects
another one and Marathon keeps its running tasks. Needs Debian's `zookeeper` package (the
JVM is run directly with a temporary config; no service is enabled); skipped without it.
"""
import time

import pytest

from testbed.standins import common
from testbed.standins.localrun import (kill_checkpointed_tasks, standin, start_zookeeper,
                                       wait_port, zookeeper_available)
from tests.unit.standins_local import free_port, get, loopback, wait

pytestmark = pytest.mark.skipif(not zookeeper_available(),
                                reason="needs Debian's zookeeper package (apt-get install zookeeper)")
MASTERS = [loopback(1), loopback(2), loopback(3)]
AGENTS = [loopback(51), loopback(52)]
HELLO = {"id": "hello2", "cmd": "echo hello; sleep 10", "mem": 16, "cpus": 0.1,
         "instances": 1, "disk": 0.0, "ports": [0]}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cluster")
    zk_port = free_port()
    procs = {"zk": start_zookeeper(tmp / "zk", zk_port)}
    zk = f"127.0.0.1:{zk_port}"
    try:
        for ip in MASTERS:
            procs[f"master {ip}"] = standin("mesos_master", [
                f"--zk=zk://{zk}/mesos", "--quorum=2", f"--ip={ip}", f"--hostname={ip}",
                f"--work_dir={tmp / ip / 'master'}", f"--log_dir={tmp / ip / 'log'}"],
                str(tmp / f"master-{ip}.log"))
        for ip in AGENTS:
            procs[f"agent {ip}"] = standin("mesos_slave", [
                f"--master=zk://{zk}/mesos", f"--ip={ip}", f"--hostname={ip}",
                f"--work_dir={tmp / ip / 'agent'}", "--resources=cpus:1;mem:512"],
                str(tmp / f"agent-{ip}.log"))
        for ip in MASTERS:
            procs[f"marathon {ip}"] = standin("marathon", [
                "--master", f"zk://{zk}/mesos", "--zk", f"zk://{zk}/marathon",
                "--hostname", ip, "--http_address", ip], str(tmp / f"marathon-{ip}.log"))
        for ip in MASTERS:
            wait_port(ip, 5050)
            wait_port(ip, 8080)
        # Every test may run first: let the elections settle before any of them starts.
        wait(leading_master)
        wait(lambda: common.call("GET", f"http://{MASTERS[0]}:8080/v2/leader")[0] == 200)
        procs["zk_hosts"] = zk
        yield procs, tmp
    finally:
        for name, p in procs.items():
            if name not in ("zk", "zk_hosts"):
                p.stop()
        procs["zk"].stop()
        for ip in AGENTS:
            kill_checkpointed_tasks(tmp / ip / "agent")


def leading_master():
    for ip in MASTERS:
        try:
            if get(f"http://{ip}:5050/metrics/snapshot")["master/elected"] == 1.0:
                return ip
        except OSError:
            continue
    return None


def test_one_leader_others_redirect(cluster):
    leader = wait(leading_master)
    state = wait(lambda: get(f"http://{leader}:5050/master/state"))
    wait(lambda: get(f"http://{leader}:5050/master/state")["activated_slaves"] == 2)
    assert state["leader"] == f"master@{leader}:5050" and state["flags"]["quorum"] == "2"
    other = next(ip for ip in MASTERS if ip != leader)
    status, _, headers = common.raw_call("GET", f"http://{other}:5050/master/state")
    assert status == 307 and headers["Location"] == f"//{leader}:5050/master/state"
    # Every master's log replica recovers once a quorum of replicas is up, elected or not.
    wait(lambda: get(f"http://{other}:5050/metrics/snapshot")["registrar/log/recovered"] == 1.0)


def test_master_without_quorum_fails_recovery_with_the_real_text(cluster):
    procs, tmp = cluster
    lonely = standin("mesos_master", [
        f"--zk=zk://{procs['zk_hosts']}/lonely", "--quorum=2", f"--ip={loopback(4)}",
        f"--work_dir={tmp / 'lonely'}", "--registry_fetch_timeout=2secs"],
        str(tmp / "lonely.log"))
    wait(lambda: not lonely.alive(), timeout=20)
    assert lonely.popen.returncode == 1
    assert ("Recovery failed: Failed to recover registrar: Failed to perform fetch within "
            "2secs") in lonely.output()


def test_marathon_leader_and_proxy(cluster):
    leader = wait(lambda: get(f"http://{MASTERS[0]}:8080/v2/leader").get("leader"))
    follower = next(ip for ip in MASTERS if f"{ip}:8080" != leader)
    status, info, headers = common.call("GET", f"http://{follower}:8080/v2/info")
    assert status == 200 and info["elected"] is True and info["leader"] == leader
    assert headers["X-Marathon-Leader"] == f"http://{leader}" and "X-Marathon-Via" in headers
    assert common.raw_call("GET", f"http://{follower}:8080/ping")[1] == b"pong\n"


def test_api_errors(cluster):
    url = f"http://{MASTERS[1]}:8080/v2/apps"
    assert common.call("POST", url, {"id": "BAD", "cmd": "x"})[0] == 422
    status, body, _ = common.call("POST", url, {"id": "noc"})
    assert status == 422 and body["message"] == "Object is not valid"
    assert common.raw_call("POST", url, b"{nope", {"Content-Type": "application/json"})[0] == 400
    status, body, _ = common.call("GET", url + "/missing")
    assert (status, body) == (404, {"message": "App '/missing' does not exist"})


def test_hello_runs_restarts_and_survives_leader_changes(cluster):
    procs, tmp = cluster
    api = f"http://{MASTERS[2]}:8080/v2/apps"
    status, body, headers = common.call("POST", api, HELLO)
    assert status == 201, body
    assert headers["Location"].endswith("/v2/apps/hello2") and headers["Marathon-Deployment-Id"]
    assert body["deployments"][0]["id"] == headers["Marathon-Deployment-Id"]
    assert common.call("POST", api, HELLO)[1] == {
        "message": "An app with id [/hello2] already exists."}
    first = wait(lambda: _running(api))
    wait(lambda: get(f"http://{MASTERS[0]}:8080/v2/deployments") == [])
    stdout = wait(lambda: [p for ip in AGENTS for p in (tmp / ip).glob(
        "agent/slaves/*/frameworks/*/executors/hello2.*/runs/latest/stdout")])
    assert stdout[0].read_text() == "hello\n"
    second = wait(lambda: (_running(api) or {}).get("id") not in (None, first["id"]) and
                  _running(api), timeout=25)
    assert second["id"] != first["id"]  # the 10 s task ended and was started again
    # The list carries tasks only when asked, as Marathon's does.
    assert "tasks" not in get(api)["apps"][0]
    assert get(api + "?embed=apps.tasks")["apps"][0]["tasks"][0]["appId"] == "/hello2"

    # Kill -9 the leading master: another is elected, the app keeps running.
    leader = leading_master()
    procs[f"master {leader}"].kill()
    new = wait(lambda: (lambda ip: ip not in (None, leader) and ip)(leading_master()),
               timeout=30)
    assert new != leader
    wait(lambda: get(f"http://{new}:5050/master/state")["activated_slaves"] == 2)
    wait(lambda: _running(api), timeout=30)

    # Kill -9 the leading Marathon: the next one keeps the running task, launches no copy.
    mleader = get(f"http://{MASTERS[0]}:8080/v2/leader")["leader"].split(":")[0]
    long_app = {"id": "long", "cmd": "sleep 300", "mem": 16, "cpus": 0.1}
    assert common.call("POST", api.replace(MASTERS[2], mleader), long_app)[0] == 201
    task = wait(lambda: _running(f"http://{mleader}:8080/v2/apps", "long"))
    procs[f"marathon {mleader}"].kill()
    other = next(ip for ip in MASTERS if ip != mleader)
    wait(lambda: get(f"http://{other}:8080/v2/leader").get("leader", "").split(":")[0]
         not in ("", mleader), timeout=30)
    time.sleep(8)  # past the new leader's settling time: a duplicate would have appeared
    app = get(f"http://{other}:8080/v2/apps/long")["app"]
    assert [t["id"] for t in app["tasks"]] == [task["id"]]


def _running(api, app="hello2"):
    tasks = get(f"{api}/{app}")["app"]["tasks"]
    running = [t for t in tasks if t["state"] == "TASK_RUNNING"]
    return running[0] if running else None


def test_the_leader_abdicates_on_request_and_a_standby_takes_over_at_once(cluster):
    """DELETE /v2/leader, sent to a standby, is proxied to the leader, which answers, then
    leaves the election (its node goes with its session) and exits; a standby leads within
    a second or two, not after a session timeout."""
    procs, _ = cluster
    alive = [ip for ip in MASTERS if procs[f"marathon {ip}"].alive()]   # a test killed one
    leader = wait(lambda: get(f"http://{alive[0]}:8080/v2/leader").get("leader"))
    standby = next(ip for ip in alive if f"{ip}:8080" != leader)
    status, body, _ = common.call("DELETE", f"http://{standby}:8080/v2/leader")
    assert (status, body) == (200, {"message": "Leadership abdicated"})
    started = time.monotonic()
    wait(lambda: not procs[f"marathon {leader.split(':')[0]}"].alive(), timeout=10)
    new = wait(lambda: (lambda named: named not in (None, leader) and named)(
        get(f"http://{standby}:8080/v2/leader").get("leader")), timeout=10)
    assert time.monotonic() - started < 5, "a standby took over only after a session timeout"
    assert get(f"http://{new}/v2/leader") == {"leader": new}
