"""The app tasks on the testbed: each `fab app-*` command against the stand-in Marathon on the
real hosts, checked through what the tool does not own: Marathon's and the Mesos master's HTTP
read here directly, and the tasks' sandboxes over ssh.

Runs on its own (it builds the cluster when needed) and after test_cluster.py in one session
(`fab cluster` is then a quick re-run). The apps run `while true; do sleep 1; done`, so
nothing ends by itself while a test looks.
"""

from __future__ import annotations

import json

import pytest
import requests

from testbed import hosts as tb
from tests.integration.conftest import (MASTERS, SLAVES, fab, http_get, ip, mesos_leader,
                                        try_json, wait_for)

LOOP = "while true; do sleep 1; done"
APP = {"id": "/it/loop", "cmd": LOOP, "cpus": 0.1, "mem": 16, "instances": 1}
# No agent has a terabyte: its deployment stays at "ScaleApplication" until cancelled.
STUCK = {"id": "/it/stuck", "cmd": LOOP, "cpus": 0.1, "mem": 1_000_000}


@pytest.fixture(scope="module")
def cluster():
    """The tutorial's cluster, built (or re-run) by the tool, with elected leaders."""
    if tb.load_state() is None:
        tb.up()
    assert fab("cluster").returncode == 0
    wait_for("a Marathon leader", lambda: marathon("/v2/leader"), timeout=120)
    leader = wait_for("a Mesos leader", mesos_leader, timeout=60)
    wait_for("3 active agents", lambda: len(agents(leader)) == 3, timeout=60)


def marathon(path: str):
    """GET a Marathon path from the first master that answers 200 (a standby proxies)."""
    for m in MASTERS:
        body = try_json(m, 8080, path)
        if body is not None:
            return body
    return None


def marathon_status(path: str) -> int | None:
    """The status the first master with an answer below 500 gives."""
    for m in MASTERS:
        try:
            status = http_get(m, 8080, path).status_code
        except requests.RequestException:
            continue
        if status < 500:
            return status
    return None


def agents(leader: str) -> list[dict]:
    return [a for a in (try_json(leader, 5050, "/master/state") or {}).get("slaves", [])
            if a.get("active")]


def mesos_tasks(app_id: str) -> dict[str, list[str]]:
    """The Mesos master's view of an app's tasks: {"running": [ids], "killed": [ids], ...}."""
    leader = mesos_leader()
    state = try_json(leader, 5050, "/master/state") if leader else None
    prefix = app_id.strip("/").replace("/", "_") + "."
    found: dict[str, list[str]] = {}
    for fw in (state or {}).get("frameworks", []):
        for t in fw.get("tasks", []) + fw.get("completed_tasks", []):
            if t["id"].startswith(prefix):
                found.setdefault(t["state"].removeprefix("TASK_").lower(), []).append(t["id"])
    return found


def write(tmp_path, name: str, definition: dict) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(definition))
    return str(path)


def sandbox_exists(task_id: str, host_ip: str) -> bool:
    agent = next(s for s in SLAVES if ip(s) == host_ip)
    return tb.ssh(agent, "test -d /var/lib/mesos/slaves/*/frameworks/*/executors/"
                         f"{task_id}/runs/latest").returncode == 0


def test_deploy_list_show(cluster, tmp_path):
    result = fab("deploy-app", "--file", write(tmp_path, "loop.json", APP), "--timeout", "120")
    assert result.returncode == 0, result.stderr
    app = marathon("/v2/apps/it/loop")["app"]
    assert app["tasksRunning"] == 1
    (task,) = app["tasks"]
    assert mesos_tasks("/it/loop")["running"] == [task["id"]]
    assert sandbox_exists(task["id"], task["host"])
    assert "marathon deployment of app /it/loop: done after" in result.stdout

    listed = fab("app-list")
    assert listed.returncode == 0
    row = next(line.split() for line in listed.stdout.splitlines() if line.startswith("/it/loop"))
    assert row == ["/it/loop", "1", "1", "-", "0", "-"]

    shown = fab("app-show", "--id", "/it/loop")
    assert shown.returncode == 0
    assert f"{task['id']}  {task['host']}  TASK_RUNNING" in shown.stdout
    assert "launch queue: nothing waiting to launch" in shown.stdout


def test_scale_up_and_down(cluster):
    result = fab("app-scale", "--id", "/it/loop", "--instances", "3", "--timeout", "120")
    assert result.returncode == 0, result.stderr
    running = mesos_tasks("/it/loop")["running"]
    assert len(running) == 3
    assert sorted(t["id"] for t in marathon("/v2/apps/it/loop")["app"]["tasks"]) == sorted(running)
    assert marathon("/v2/deployments") == []

    result = fab("app-scale", "--id", "/it/loop", "--instances", "2", "--timeout", "120")
    assert result.returncode == 0, result.stderr
    assert len(mesos_tasks("/it/loop")["running"]) == 2
    assert marathon("/v2/apps/it/loop")["app"]["instances"] == 2


def test_restart_replaces_every_task(cluster):
    before = set(mesos_tasks("/it/loop")["running"])
    result = fab("app-restart", "--id", "/it/loop", "--timeout", "120")
    assert result.returncode == 0, result.stderr
    tasks = mesos_tasks("/it/loop")
    assert len(tasks["running"]) == 2 and not before & set(tasks["running"])
    assert before <= set(tasks["killed"])


def test_unknown_app_is_named(cluster):
    result = fab("app-show", "--id", "/it/nope")
    assert result.returncode == 1
    assert result.stderr.strip() == ("app-show failed: app /it/nope does not exist (App "
                                     "'/it/nope' does not exist)")


def test_a_stuck_deployment_times_out_locks_and_is_rolled_back(cluster, tmp_path):
    result = fab("deploy-app", "--file", write(tmp_path, "stuck.json", STUCK), "--timeout", "6")
    assert result.returncode == 1
    assert "deploy-app failed: deployment of app /it/stuck did not finish within 6 s: " \
           "deployment " in result.stderr
    assert "step 2/2: ScaleApplication /it/stuck" in result.stderr
    (deployment,) = marathon("/v2/deployments")
    assert deployment["affectedApps"] == ["/it/stuck"]

    listed = fab("deployments")
    assert listed.returncode == 0
    assert f"{deployment['id']}  /it/stuck  2/2   ScaleApplication /it/stuck" in listed.stdout

    locked = fab("app-scale", "--id", "/it/stuck", "--instances", "0", "--timeout", "30")
    assert locked.returncode == 1
    assert f"app /it/stuck is locked by deployment {deployment['id']} (HTTP 409)" in locked.stderr
    assert "--force" in locked.stderr

    result = fab("deployment-cancel", "--id", deployment["id"], "--timeout", "60")
    assert result.returncode == 0, result.stderr
    assert f"cancelled deployment {deployment['id']}; Marathon rolled it back" in result.stdout
    assert marathon_status("/v2/apps/it/stuck") == 404
    assert marathon("/v2/deployments") == []


def test_a_forced_cancel_leaves_the_app_as_it_is(cluster, tmp_path):
    fab("deploy-app", "--file", write(tmp_path, "stuck.json", STUCK), "--timeout", "1")
    (deployment,) = wait_for("the stuck deployment", lambda: marathon("/v2/deployments"))
    result = fab("deployment-cancel", "--id", deployment["id"], "--force")
    assert result.returncode == 0, result.stderr
    assert f"stopped deployment {deployment['id']} WITHOUT rollback" in result.stdout
    assert marathon("/v2/deployments") == []
    assert marathon("/v2/apps/it/stuck")["app"]["instances"] == 1
    assert fab("app-destroy", "--id", "/it/stuck", "--timeout", "60").returncode == 0
    assert marathon_status("/v2/apps/it/stuck") == 404


def test_a_group_is_deployed_and_its_apps_destroyed(cluster, tmp_path):
    group = {"id": "/it/shop", "apps": [{"id": "front", "cmd": LOOP, "cpus": 0.1, "mem": 16},
                                        {"id": "back", "cmd": LOOP, "cpus": 0.1, "mem": 16,
                                         "instances": 2}]}
    result = fab("deploy-app", "--file", write(tmp_path, "shop.json", group), "--timeout", "120")
    assert result.returncode == 0, result.stderr
    assert len(mesos_tasks("/it/shop/front")["running"]) == 1
    assert len(mesos_tasks("/it/shop/back")["running"]) == 2
    for app_id in ("/it/shop/front", "/it/shop/back"):
        assert fab("app-destroy", "--id", app_id, "--timeout", "60").returncode == 0
        assert "running" not in mesos_tasks(app_id)
        assert marathon_status(f"/v2/apps{app_id}") == 404


def test_destroy_kills_the_tasks(cluster):
    running = mesos_tasks("/it/loop")["running"]
    result = fab("app-destroy", "--id", "/it/loop", "--timeout", "60")
    assert result.returncode == 0, result.stderr
    tasks = mesos_tasks("/it/loop")
    assert "running" not in tasks and set(running) <= set(tasks["killed"])
    assert marathon_status("/v2/apps/it/loop") == 404


def test_no_marathon_answering_is_one_line_naming_each_master(cluster):
    for m in MASTERS:
        assert tb.ssh(m, "systemctl stop marathon").returncode == 0
    try:
        result = fab("app-list")
        assert result.returncode == 1
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith("app-list failed: no Marathon master answered GET /v2/apps: ")
        assert all(f"http://{ip(m)}:8080: cannot connect" in line for m in MASTERS)
    finally:
        for m in MASTERS:
            tb.ssh(m, "systemctl start marathon")
        wait_for("a Marathon leader again", lambda: marathon("/v2/leader"), timeout=120)
