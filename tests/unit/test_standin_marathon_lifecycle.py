"""The stand-in Marathon's app lifecycle (test equipment), as real Marathon 1.4/1.6 answers it:
scale, restart, destroy, deployments with steps, 409 while one runs, cancel with and without
rollback, the launch queue and its delay, groups; then the tool's own app tasks against it.

One ZooKeeper, one master (quorum 1), two agents and one Marathon on a loopback /24 of its own, each on a free
port, so that other runs of this module on the machine do not answer in its place. Needs
Debian's `zookeeper` package; skipped without it.
"""
import io
import time

import pytest

from tasks import apps as app_tasks, progress
from tasks.marathon import Marathon, MarathonError
from testbed.standins import common
from testbed.standins.localrun import (kill_checkpointed_tasks, standin, start_zookeeper,
                                       wait_port, zookeeper_available)
from tests.unit.standins_local import free_port, loopback, wait

pytestmark = pytest.mark.skipif(not zookeeper_available(),
                                reason="needs Debian's zookeeper package (apt-get install zookeeper)")
MASTER = MARATHON = loopback(101)
AGENTS = [loopback(151), loopback(152)]
MASTER_PORT, MARATHON_PORT = free_port(), free_port()
API = f"http://{MARATHON}:{MARATHON_PORT}"
LOOP = "while true; do sleep 1; done"


@pytest.fixture(scope="module")
def marathon(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lifecycle")
    zk_port = free_port()
    procs = {"zk": start_zookeeper(tmp / "zk", zk_port)}
    zk = f"127.0.0.1:{zk_port}"
    try:
        procs["master"] = standin("mesos_master", [
            f"--zk=zk://{zk}/mesos", "--quorum=1", f"--ip={MASTER}", f"--hostname={MASTER}",
            f"--port={MASTER_PORT}", f"--work_dir={tmp / 'master'}"], str(tmp / "master.log"))
        for ip in AGENTS:
            procs[ip] = standin("mesos_slave", [
                f"--master=zk://{zk}/mesos", f"--ip={ip}", f"--hostname={ip}",
                f"--port={free_port()}", f"--work_dir={tmp / ip}", "--resources=cpus:1;mem:256"],
                str(tmp / f"{ip}.log"))
        procs["marathon"] = standin("marathon", [
            "--master", f"zk://{zk}/mesos", "--zk", f"zk://{zk}/marathon",
            "--hostname", MARATHON, "--http_address", MARATHON,
            "--http_port", str(MARATHON_PORT)], str(tmp / "marathon.log"))
        wait_port(MARATHON, MARATHON_PORT)
        wait(lambda: call("GET", "/v2/leader")[0] == 200)
        # Until it is elected the master answers 503 with a text body, not its state.
        wait(lambda: activated_agents(f"http://{MASTER}:{MASTER_PORT}/master/state") == 2)
        yield tmp
    finally:
        for name, p in procs.items():
            if name != "zk":
                p.stop()
        procs["zk"].stop()
        for ip in AGENTS:
            kill_checkpointed_tasks(tmp / ip)


def activated_agents(url):
    status, body = call("GET", url)[:2]
    return body["activated_slaves"] if status == 200 else None


def call(method, path, payload=None):
    url = path if path.startswith("http") else API + path
    return common.call(method, url, payload, timeout=10)


def deployments():
    return {d["id"]: d for d in call("GET", "/v2/deployments")[1]}


def running(app_id):
    status, body, _ = call("GET", f"/v2/apps{app_id}")
    if status != 200:
        return None
    tasks = body["app"]["tasks"]
    return sorted(t["id"] for t in tasks if t["state"] == "TASK_RUNNING") \
        if len(tasks) == body["app"]["instances"] else None


def settled(deployment_id):
    return wait(lambda: deployment_id not in deployments(), timeout=40)


def test_create_scale_and_restart_with_steps_and_versions(marathon):
    status, body, headers = call("POST", "/v2/apps", {"id": "web", "cmd": LOOP, "cpus": 0.1,
                                                      "mem": 16})
    assert status == 201
    created = headers["Marathon-Deployment-Id"]
    plan = deployments()[created]
    assert [s["actions"] for s in plan["steps"]] == [
        [{"action": "StartApplication", "app": "/web"}],
        [{"action": "ScaleApplication", "app": "/web"}]]
    assert plan["totalSteps"] == 2 and plan["affectedApps"] == ["/web"]
    settled(created)
    first = wait(lambda: running("/web"))

    # Scale: a partial update, 200 with the deployment and its header; one ScaleApplication step.
    status, body, headers = call("PUT", "/v2/apps/web", {"instances": 2})
    assert status == 200 and set(body) == {"deploymentId", "version"}
    assert headers["Marathon-Deployment-Id"] == body["deploymentId"]
    assert [s["actions"][0]["action"] for s in deployments()[body["deploymentId"]]["steps"]] == \
        ["ScaleApplication"]
    settled(body["deploymentId"])
    two = wait(lambda: (lambda r: r if r and len(r) == 2 else None)(running("/web")))
    assert first[0] in two        # scaling keeps the running task
    app = call("GET", "/v2/apps/web")[1]["app"]
    assert app["versionInfo"]["lastScalingAt"] == body["version"]
    assert app["versionInfo"]["lastConfigChangeAt"] != body["version"]

    # Restart: RestartApplication; new tasks carry the new version, the old ones are gone.
    status, body, headers = call("POST", "/v2/apps/web/restart")
    assert status == 200 and headers["Marathon-Deployment-Id"] == body["deploymentId"]
    assert deployments()[body["deploymentId"]]["currentActions"] == [
        {"action": "RestartApplication", "app": "/web", "readinessCheckResults": []}]
    settled(body["deploymentId"])
    new = wait(lambda: running("/web"))
    assert len(new) == 2 and not set(new) & set(two)
    tasks = call("GET", "/v2/apps/web")[1]["app"]["tasks"]
    assert {t["version"] for t in tasks} == {body["version"]}

    # Destroy: 200 with a StopApplication deployment; then 404 with Marathon's words.
    status, body, _ = call("DELETE", "/v2/apps/web")
    assert status == 200
    assert deployments()[body["deploymentId"]]["steps"] == [
        {"actions": [{"action": "StopApplication", "app": "/web"}]}]
    settled(body["deploymentId"])
    assert call("GET", "/v2/apps/web")[:2] == (404, {"message": "App '/web' does not exist"})
    assert call("DELETE", "/v2/apps/web")[:2] == (404, {"message": "App '/web' does not exist"})
    assert call("POST", "/v2/apps/web/restart")[0] == 404


STUCK = {"id": "big", "cmd": LOOP, "cpus": 0.1, "mem": 4096}   # no agent has room: never runs


def test_a_running_deployment_locks_the_app_and_cancel_rolls_it_back(marathon):
    status, _, headers = call("POST", "/v2/apps", STUCK)
    stuck = headers["Marathon-Deployment-Id"]
    time.sleep(2.5)
    assert deployments()[stuck]["currentStep"] == 2       # started, scaling forever
    for method, path, payload in (("PUT", "/v2/apps/big", {"instances": 2}),
                                  ("POST", "/v2/apps/big/restart", None)):
        status, body, _ = call(method, path, payload)
        assert status == 409
        assert body == {"message": "App is locked by one or more deployments. Override with the "
                                   "option '?force=true'. View details at "
                                   "'/v2/deployments/<DEPLOYMENT_ID>'.",
                        "deployments": [{"id": stuck}]}
    assert call("GET", f"/v2/deployments/{stuck}")[0] == 405

    # Cancel: a NEW deployment that rolls back (the app did not exist: it is stopped).
    status, body, headers = call("DELETE", f"/v2/deployments/{stuck}")
    assert status == 200 and body["deploymentId"] != stuck
    assert headers["Marathon-Deployment-Id"] == body["deploymentId"]
    assert stuck not in deployments()
    assert deployments()[body["deploymentId"]]["steps"] == [
        {"actions": [{"action": "StopApplication", "app": "/big"}]}]
    settled(body["deploymentId"])
    assert call("GET", "/v2/apps/big")[0] == 404
    assert call("DELETE", f"/v2/deployments/{stuck}")[:2] == (
        404, {"message": f"DeploymentPlan {stuck} does not exist"})

    # Forced cancel: 202, no body, no rollback: the app stays as it was left.
    headers = call("POST", "/v2/apps", STUCK)[2]
    again = headers["Marathon-Deployment-Id"]
    status, raw, headers = common.raw_call("DELETE", f"{API}/v2/deployments/{again}?force=true")
    assert (status, raw) == (202, b"") and "Content-Type" not in headers
    assert deployments() == {}
    assert call("GET", "/v2/apps/big")[1]["app"]["instances"] == 1
    # Nothing locks it now: a scale is accepted; force also overrides a running deployment.
    status, body, _ = call("PUT", "/v2/apps/big", {"instances": 0})
    assert status == 200
    settled(body["deploymentId"])
    blocked = call("PUT", "/v2/apps/big", {"instances": 1})[1]["deploymentId"]
    status, body, _ = call("PUT", "/v2/apps/big?force=true", {"instances": 0})
    assert status == 200 and blocked not in deployments()
    settled(body["deploymentId"])
    assert call("DELETE", "/v2/apps/big")[0] == 200


def test_launch_queue_delay_after_failures_and_its_reset(marathon):
    status, _, headers = call("POST", "/v2/apps", {"id": "crash", "cmd": "exit 1", "cpus": 0.1,
                                                   "mem": 16, "backoffSeconds": 60})

    def delayed():
        queue = call("GET", "/v2/queue")[1]["queue"]
        entry = next((q for q in queue if q["app"]["id"] == "/crash"), None)
        return entry if entry and entry["delay"]["timeLeftSeconds"] > 0 else None

    entry = wait(delayed, timeout=30)
    assert entry["count"] == 1 and entry["delay"]["overdue"] is False
    assert 0 < entry["delay"]["timeLeftSeconds"] <= 60
    failure = call("GET", "/v2/apps/crash")[1]["app"]["lastTaskFailure"]
    assert failure["state"] == "TASK_FAILED" and failure["appId"] == "/crash"
    listed = call("GET", "/v2/apps?embed=apps.lastTaskFailure")[1]["apps"]
    assert "tasks" not in listed[0] and listed[0]["lastTaskFailure"]["taskId"] == failure["taskId"]

    status, raw, _ = common.raw_call("DELETE", f"{API}/v2/queue/crash/delay")
    assert (status, raw) == (204, b"")
    queue = call("GET", "/v2/queue")[1]["queue"]
    assert all(q["delay"]["timeLeftSeconds"] == 0 for q in queue if q["app"]["id"] == "/crash")
    assert call("DELETE", "/v2/queue/nope/delay")[:2] == (
        404, {"message": "Application /nope not found in tasks queue."})
    call("DELETE", "/v2/deployments/" + headers["Marathon-Deployment-Id"] + "?force=true")
    assert call("DELETE", "/v2/apps/crash")[0] == 200


def test_groups_are_created_then_replaced(marathon):
    group = {"id": "/shop", "apps": [{"id": "front", "cmd": LOOP, "cpus": 0.1, "mem": 16},
                                     {"id": "/shop/back", "cmd": LOOP, "cpus": 0.1, "mem": 16}]}
    status, body, headers = call("POST", "/v2/groups", group)
    assert status == 201 and set(body) == {"deploymentId", "version"}
    assert headers["Location"].endswith("/v2/groups/shop")
    steps = deployments()[body["deploymentId"]]["steps"]
    assert [a["action"] for s in steps for a in s["actions"]] == [
        "StartApplication", "StartApplication", "ScaleApplication", "ScaleApplication"]
    assert call("POST", "/v2/groups", group)[:2] == (
        409, {"message": "Group /shop is already created. Use PUT to change this group."})
    settled(body["deploymentId"])
    assert wait(lambda: running("/shop/front")) and running("/shop/back")

    # PUT replaces the group's apps: back goes, front is scaled.
    status, body, _ = call("PUT", "/v2/groups/shop", {"id": "/shop", "apps": [
        {"id": "front", "cmd": LOOP, "cpus": 0.1, "mem": 16, "instances": 2}]})
    assert status == 200
    assert deployments()[body["deploymentId"]]["steps"] == [
        {"actions": [{"action": "StopApplication", "app": "/shop/back"}]},
        {"actions": [{"action": "ScaleApplication", "app": "/shop/front"}]}]
    settled(body["deploymentId"])
    assert call("GET", "/v2/apps/shop/back")[0] == 404

    status, body, _ = call("POST", "/v2/groups", {"id": "/bad", "apps": [{"id": "x"}]})
    assert status == 422 and body["details"][0]["path"] == "/apps(0)"
    status, body, _ = call("PUT", "/v2/groups/shop", {"id": "/shop", "apps": [
        {"id": "/elsewhere/x", "cmd": "c"}]})
    assert status == 422 and body["details"] == [{"path": "/apps(0)/id", "errors": [
        "identifier /elsewhere/x is not child of /shop. Hint: use relative paths."]}]
    assert call("DELETE", "/v2/apps/shop/front")[0] == 200


def test_the_tools_app_tasks_against_the_stand_in(marathon, monkeypatch):
    monkeypatch.setattr(Marathon, "board", progress.Board(stream=io.StringIO(), tty=False))
    m = Marathon([API], log=lambda line: None)
    # cpus 0.3: at most 3 tasks an agent, 6 in all.
    app_tasks.deploy(m, "app", {"id": "/tool", "cmd": LOOP, "cpus": 0.3, "mem": 16},
                     update=True, force=False, timeout=40)
    assert "scaled /tool from 1 to 2 instances" in app_tasks.scale(m, "/tool", 2, force=False,
                                                                    timeout=40)
    assert len(running("/tool")) == 2
    before = running("/tool")
    assert "2 old tasks replaced" in app_tasks.restart(m, "/tool", force=False, timeout=40)
    assert not set(running("/tool")) & set(before)

    # A scale that cannot finish: reported at the timeout, then cancelled with rollback.
    with pytest.raises(MarathonError, match=r"scale of /tool from 2 to 9 did not finish within "
                                            r"3 s: deployment .* step 1/1: ScaleApplication "
                                            r"/tool"):
        app_tasks.scale(m, "/tool", 9, force=False, timeout=3)
    (stuck,) = deployments()
    with pytest.raises(MarathonError, match=rf"app /tool is locked by deployment {stuck}"):
        app_tasks.restart(m, "/tool", force=False, timeout=40)
    assert f"cancelled deployment {stuck}" in app_tasks.cancel(m, stuck, force=False, timeout=40)
    assert call("GET", "/v2/apps/tool")[1]["app"]["instances"] == 2
    assert "destroyed /tool" in app_tasks.destroy(m, "/tool", timeout=40)
    assert call("GET", "/v2/apps/tool")[0] == 404
