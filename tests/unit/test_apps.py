"""tasks.apps (what deploy-app and the app-* tasks do) against scripted fake Marathons on
loopback: every answer real Marathon gives (200/201/202, 404, 409 locked, 422, 400, 502/503),
waits that end, time out with a report, or fail fast, and the `fab` command line's one-line
errors with exit code 1.
"""

from __future__ import annotations

import dataclasses
import io
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from tasks import apps, cli, progress
from tasks.marathon import Marathon, MarathonError, NoMasterAnswered
from tests.unit.fake_marathon import fake, fakes  # noqa: F401 (fixtures)

ROOT = Path(__file__).resolve().parents[2]
V0 = "2024-05-01T09:00:00.000Z"
V1 = "2024-05-01T10:00:00.000Z"
HELLO = {"id": "/hello2", "cmd": "sleep 100", "mem": 16, "cpus": 0.1}


def task(tid, state="TASK_RUNNING", host="slave1"):
    return {"id": tid, "host": host, "state": state, "startedAt": V1}


def app(tasks=(), instances=1, app_id="/hello2", **extra):
    tasks = list(tasks)
    return (200, {"app": {"id": app_id, "cmd": "sleep 100", "instances": instances,
                          "tasksRunning": sum(t["state"] == "TASK_RUNNING" for t in tasks),
                          "tasksStaged": sum(t["state"] == "TASK_STAGING" for t in tasks),
                          "tasks": tasks, "deployments": [], "version": V1, **extra}})


def deploying(dep_id="d1", step=2, actions=(("ScaleApplication", "/hello2"),), apps_=("/hello2",)):
    return (200, [{"id": dep_id, "version": V1, "affectedApps": list(apps_), "currentStep": step,
                   "totalSteps": 2, "steps": [],
                   "currentActions": [{"action": a, "app": i} for a, i in actions]}])


def answer(dep_id, status=200, version=V1):
    return (status, {"deploymentId": dep_id, "version": version},
            {"Marathon-Deployment-Id": dep_id})


NONE = (200, [])
LOCKED = (409, {"message": "App is locked by one or more deployments. Override with the option "
                           "'?force=true'. View details at '/v2/deployments/<DEPLOYMENT_ID>'.",
                "deployments": [{"id": "d0"}, {"id": "d9"}]})
MISSING = (404, {"message": "App '/nope' does not exist"})


@pytest.fixture
def shown(monkeypatch):
    """What the waits print (off a terminal: plain lines)."""
    out = io.StringIO()
    monkeypatch.setattr(Marathon, "board", progress.Board(stream=out, tty=False))
    return out


def client(*fakes_, **kwargs):
    kwargs.setdefault("log", lambda line: None)
    return Marathon([f.url for f in fakes_], **kwargs)


FAST = {"timeout": 3.0}


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch):
    monkeypatch.setitem(Marathon.wait_for.__kwdefaults__, "poll", 0.02)


# --- deploy-app ---------------------------------------------------------------------------------

def test_deploy_creates_then_waits_and_says_what_it_waits_for(fake, shown):
    fake.on("POST", "/v2/apps", (201, {**HELLO, "version": V1, "deployments": [{"id": "d1"}]},
                                 {"Marathon-Deployment-Id": "d1"}))
    fake.on("GET", "/v2/deployments", deploying(), deploying(), NONE)
    fake.on("GET", "/v2/apps/hello2", app([]), app([]), app([task("hello2.a")]))

    text = apps.deploy(client(fake), "app", HELLO, update=True, force=False, **FAST)

    assert text.splitlines() == [
        f"created app /hello2 (version {V1}, deployment d1) via {fake.url}",
        "  /hello2: 1/1 running",
        f"    hello2.a  slave1  TASK_RUNNING  started {V1}"]
    assert fake.requests[0] == ("POST", "/v2/apps", HELLO)
    lines = shown.getvalue().splitlines()
    assert lines[0] == "marathon deployment of app /hello2: waiting ..."
    assert lines[1].startswith("marathon deployment of app /hello2: deployment d1 step 2/2: "
                               "ScaleApplication /hello2; /hello2: 0/1 running (")
    assert lines[-1].startswith("marathon deployment of app /hello2: done after ")


def test_deploy_replaces_an_existing_app_whole(fake, shown):
    fake.on("POST", "/v2/apps", (409, {"message": "An app with id [/hello2] already exists."}))
    fake.on("PUT", "/v2/apps/hello2?partialUpdate=false", answer("d2"))
    fake.on("GET", "/v2/deployments", NONE)
    fake.on("GET", "/v2/apps/hello2", app([task("hello2.b")]))

    text = apps.deploy(client(fake), "app", HELLO, update=True, force=False, **FAST)

    assert text.startswith(f"updated app /hello2 (version {V1}, deployment d2)")
    assert fake.requests[1] == ("PUT", "/v2/apps/hello2?partialUpdate=false", HELLO)


def test_deploy_without_update_refuses_an_existing_app(fake):
    fake.on("POST", "/v2/apps", (409, {"message": "An app with id [/hello2] already exists."}))
    with pytest.raises(MarathonError, match=r"app /hello2 already exists and updating is off "
                                            r"\(--no-update\)"):
        apps.deploy(client(fake), "app", HELLO, update=False, force=False, **FAST)
    assert fake.paths() == [("POST", "/v2/apps")]


def test_a_locked_app_names_the_deployments_and_force(fake):
    fake.on("POST", "/v2/apps", (409, {"message": "An app with id [/hello2] already exists."}))
    fake.on("PUT", "/v2/apps/hello2?partialUpdate=false", LOCKED)
    with pytest.raises(MarathonError) as e:
        apps.deploy(client(fake), "app", HELLO, update=True, force=False, **FAST)
    assert str(e.value) == ("app /hello2 is locked by deployment d0, d9 (HTTP 409): wait for it "
                            "to finish (fab deployments), or rerun with --force to override it")


def test_force_overrides_the_lock(fake, shown):
    fake.on("POST", "/v2/apps", (409, {"message": "exists"}))
    fake.on("PUT", "/v2/apps/hello2?partialUpdate=false&force=true", answer("d3"))
    fake.on("GET", "/v2/deployments", NONE)
    fake.on("GET", "/v2/apps/hello2", app([task("hello2.c")]))
    apps.deploy(client(fake), "app", HELLO, update=True, force=True, **FAST)
    assert ("PUT", "/v2/apps/hello2?partialUpdate=false&force=true") in fake.paths()


def test_422_lists_the_field_errors(fake):
    fake.on("POST", "/v2/apps", (422, {"message": "Object is not valid", "details": [
        {"path": "/mem", "errors": ["got 16.0, expected 32.0 or more"]},
        {"path": "/", "errors": ["AppDefinition must either contain one of 'cmd' or 'args'",
                                 "second"]}]}))
    with pytest.raises(MarathonError) as e:
        apps.deploy(client(fake), "app", HELLO, update=True, force=False, **FAST)
    assert str(e.value) == ("Marathon refused app /hello2 (HTTP 422 Object is not valid):\n"
                            "  /mem: got 16.0, expected 32.0 or more\n"
                            "  /: AppDefinition must either contain one of 'cmd' or 'args'; "
                            "second")


def test_400_gives_marathons_message(fake):
    fake.on("POST", "/v2/apps", (400, {"message": "Invalid JSON", "details": "Unexpected end"}))
    with pytest.raises(MarathonError, match=r"^Marathon refused app /hello2 \(HTTP 400\): "
                                            r"Invalid JSON$"):
        apps.deploy(client(fake), "app", HELLO, update=True, force=False, **FAST)


GROUP = {"id": "/prod", "apps": [{"id": "/prod/web", "cmd": "w", "instances": 2},
                                 {"id": "/prod/db", "cmd": "d"}]}


def test_a_group_goes_to_v2_groups_and_every_app_is_awaited(fake, shown):
    fake.on("POST", "/v2/groups", (409, {"message": "Group /prod is already created. Use PUT "
                                                    "to change this group."}))
    fake.on("PUT", "/v2/groups/prod", answer("g1"))
    fake.on("GET", "/v2/deployments",
            deploying("g1", 2, (("ScaleApplication", "/prod/web"),), ("/prod/db", "/prod/web")),
            NONE)
    fake.on("GET", "/v2/apps/prod/web", app([task("prod_web.1")], 2, "/prod/web"),
            app([task("prod_web.1"), task("prod_web.2", host="slave2")], 2, "/prod/web"))
    fake.on("GET", "/v2/apps/prod/db", app([task("prod_db.1")], 1, "/prod/db"))

    text = apps.deploy(client(fake), "group", GROUP, update=True, force=False, **FAST)

    assert fake.requests[1] == ("PUT", "/v2/groups/prod", GROUP)
    assert text.splitlines()[0] == f"updated group /prod (version {V1}, deployment g1) via {fake.url}"
    assert "  /prod/web: 2/2 running" in text and "  /prod/db: 1/1 running" in text
    assert "deployment g1 step 2/2: ScaleApplication /prod/web; /prod/web: 1/2 running; " \
           "/prod/db: 1/1 running" in shown.getvalue()


def test_a_new_group_is_created(fake, shown):
    fake.on("POST", "/v2/groups", (201, {"deploymentId": "g2", "version": V1},
                                   {"Marathon-Deployment-Id": "g2", "Location": "/v2/groups/prod"}))
    fake.on("GET", "/v2/deployments", NONE)
    fake.on("GET", "/v2/apps/prod/web", app([task("w1"), task("w2")], 2, "/prod/web"))
    fake.on("GET", "/v2/apps/prod/db", app([task("d1")], 1, "/prod/db"))
    assert apps.deploy(client(fake), "group", GROUP, update=False, force=False,
                       **FAST).startswith("created group /prod")


# --- masters without a leader, and writes never sent twice ---------------------------------------

def test_no_leader_anywhere_is_named_for_each_master(fakes):
    a, b = fakes(), fakes()
    a.on("PUT", "/v2/apps/hello2", (503, {"message": "Leader not ready"}))
    a.on("GET", "/v2/apps/hello2", app([task("t")]))
    b.on("PUT", "/v2/apps/hello2", (502, b"Could not determine the current leader"))
    with pytest.raises(NoMasterAnswered) as e:
        apps.scale(client(a, b), "/hello2", 2, force=False, **FAST)
    assert str(e.value) == (f"no Marathon master answered PUT /v2/apps/hello2: {a.url}: HTTP 503 "
                            f"Leader not ready; {b.url}: HTTP 502 Could not determine the "
                            "current leader")


def test_a_write_that_got_no_answer_is_not_sent_again(fakes):
    slow, other = fakes(), fakes()

    def hang(handler):
        time.sleep(2)

    slow.on("GET", "/v2/apps/hello2", app([task("t")]))
    slow.on("POST", "/v2/apps/hello2/restart", hang)
    other.on("POST", "/v2/apps/hello2/restart", answer("d5"))
    with pytest.raises(MarathonError, match=r"POST .*/v2/apps/hello2/restart: no (complete )?"
                                            r"answer within 0.5 s \(not sent to another master"):
        apps.restart(client(slow, other, timeout=0.5), "/hello2", force=False, **FAST)
    assert other.requests == []


def test_a_leader_election_during_a_wait_is_waited_out(fakes, shown):
    a, b = fakes(), fakes()
    a.on("GET", "/v2/apps/hello2", app([task("t1")]), app([task("t1"), task("t2")], 2))
    a.on("PUT", "/v2/apps/hello2", answer("d6"))
    a.on("GET", "/v2/deployments", (502, b"Could not determine the current leader"), NONE)
    b.on("GET", "/v2/deployments", (503, b""))
    text = apps.scale(client(a, b), "/hello2", 2, force=False, **FAST)
    assert text.startswith("scaled /hello2 from 1 to 2 instances (deployment d6): 2/2 running")
    assert "no master answers (no Marathon master answered GET /v2/deployments" in shown.getvalue()


# --- app-scale, app-restart, app-destroy ----------------------------------------------------------

def test_scale_waits_until_exactly_n_run(fake, shown):
    fake.on("GET", "/v2/apps/hello2", app([task("t1"), task("t2"), task("t3")], 3),
            app([task("t1"), task("t2"), task("t3", "TASK_KILLING")], 2),
            app([task("t1"), task("t2")], 2))
    fake.on("PUT", "/v2/apps/hello2", answer("d7"))
    fake.on("GET", "/v2/deployments", NONE)
    text = apps.scale(client(fake), "/hello2", 2, force=False, **FAST)
    assert fake.requests[1] == ("PUT", "/v2/apps/hello2", {"instances": 2})
    assert text.splitlines()[0] == "scaled /hello2 from 3 to 2 instances (deployment d7): 2/2 running"
    assert sum(p == ("GET", "/v2/apps/hello2") for p in fake.paths()) == 3


def test_scale_of_an_unknown_app_changes_nothing(fake):
    fake.on("GET", "/v2/apps/nope", MISSING)
    with pytest.raises(MarathonError, match=r"^app /nope does not exist \(App '/nope' does not "
                                            r"exist\)$"):
        apps.scale(client(fake), "nope", 2, force=False, **FAST)
    assert fake.paths() == [("GET", "/v2/apps/nope")]


def test_scale_of_a_locked_app_and_with_force(fake, shown):
    fake.on("GET", "/v2/apps/hello2", app([task("t1")]))
    fake.on("PUT", "/v2/apps/hello2", LOCKED)
    with pytest.raises(MarathonError, match=r"^app /hello2 is locked by deployment d0, d9 "
                                            r"\(HTTP 409\).*--force"):
        apps.scale(client(fake), "/hello2", 0, force=False, **FAST)
    fake.on("PUT", "/v2/apps/hello2?force=true", answer("d8"))
    fake.on("GET", "/v2/deployments", NONE)
    fake.on("GET", "/v2/apps/hello2", app([], 0))
    assert "scaled /hello2 from 0 to 0" in apps.scale(client(fake), "/hello2", 0, force=True,
                                                       **FAST)


def test_restart_waits_until_new_tasks_replaced_the_old(fake, shown):
    fake.on("GET", "/v2/apps/hello2", app([task("old1"), task("old2")], 2),
            app([task("old1"), task("old2"), task("new1"), task("new2", "TASK_STAGING")], 2),
            app([task("new1"), task("new2")], 2))
    fake.on("POST", "/v2/apps/hello2/restart", answer("d10"))
    fake.on("GET", "/v2/deployments", NONE)
    text = apps.restart(client(fake), "/hello2", force=False, **FAST)
    assert text.splitlines()[0] == ("restarted /hello2 (deployment d10): 2 old tasks replaced, "
                                    "2/2 running")
    assert "3/2 running, 1 staged, 2 of the 2 old tasks left" in shown.getvalue()


def test_restart_sends_force_and_unknown_is_404(fake, shown):
    fake.on("GET", "/v2/apps/hello2", app([task("old")]), app([task("new")]))
    fake.on("POST", "/v2/apps/hello2/restart?force=true", answer("d11"))
    fake.on("GET", "/v2/deployments", NONE)
    apps.restart(client(fake), "/hello2", force=True, **FAST)
    fake.on("GET", "/v2/apps/nope", MISSING)
    with pytest.raises(MarathonError, match="app /nope does not exist"):
        apps.restart(client(fake), "/nope", force=False, **FAST)


def test_destroy_waits_until_the_app_is_gone(fake, shown):
    fake.on("DELETE", "/v2/apps/hello2", answer("d12"))
    fake.on("GET", "/v2/deployments", deploying("d12", 1, (("StopApplication", "/hello2"),)), NONE)
    fake.on("GET", "/v2/apps/hello2", app([task("t")]), MISSING)
    assert apps.destroy(client(fake), "hello2", **FAST) == \
        "destroyed /hello2 (deployment d12): its tasks are killed"
    fake.on("DELETE", "/v2/apps/nope", MISSING)
    with pytest.raises(MarathonError, match="app /nope does not exist"):
        apps.destroy(client(fake), "/nope", **FAST)


# --- timeouts and failures ------------------------------------------------------------------------

FAILURE = {"appId": "/hello2", "host": "slave2", "message": "Command exited with status 1",
           "state": "TASK_FAILED", "taskId": "hello2.x", "timestamp": "2024-05-01T10:00:05.000Z",
           "version": V1}


def test_a_deployment_past_the_timeout_is_reported_and_does_not_hang(fake, shown):
    fake.on("GET", "/v2/apps/hello2", app([task("t1")], 1, lastTaskFailure=FAILURE))
    fake.on("PUT", "/v2/apps/hello2", answer("d13"))
    fake.on("GET", "/v2/deployments", deploying("d13"))
    started = time.monotonic()
    with pytest.raises(MarathonError) as e:
        apps.scale(client(fake), "/hello2", 3, force=False, timeout=0.5)
    assert time.monotonic() - started < 3
    assert str(e.value) == (
        "scale of /hello2 from 1 to 3 did not finish within 0.5 s: deployment d13 step 2/2: "
        "ScaleApplication /hello2; last state: deployment d13 step 2/2: ScaleApplication "
        "/hello2; 1/1 running; last task failure of /hello2: TASK_FAILED on slave2 at "
        "2024-05-01T10:00:05.000Z: Command exited with status 1 (Marathon goes on with it; "
        "see fab deployments, and fab deployment-cancel to roll it back)")
    assert shown.getvalue().splitlines()[-1].startswith("marathon scale of /hello2 from 1 to 3: "
                                                        "failed after ")


def test_a_finished_deployment_with_a_new_failure_fails_at_once(fake, shown):
    fake.on("GET", "/v2/apps/hello2", app([task("old")]), app([], 1, lastTaskFailure=FAILURE))
    fake.on("POST", "/v2/apps/hello2/restart", answer("d14", version="2024-05-01T10:00:00.000Z"))
    fake.on("GET", "/v2/deployments", NONE)
    with pytest.raises(MarathonError, match=r"^restart of /hello2 failed: 0/1 running, 0 of the "
                                            r"1 old tasks left; last task failure of /hello2: "
                                            r"TASK_FAILED on slave2"):
        apps.restart(client(fake), "/hello2", force=False, timeout=30)


# --- deployments, deployment-cancel ---------------------------------------------------------------

def test_deployments_table_with_age(fake):
    fake.on("GET", "/v2/deployments", deploying("d15"))
    now = datetime(2024, 5, 1, 10, 3, 30, tzinfo=timezone.utc)
    assert apps.list_deployments(client(fake), now).splitlines() == [
        "ID   APPS     STEP  CURRENT ACTIONS           AGE",
        "d15  /hello2  2/2   ScaleApplication /hello2  3 min"]
    fake.on("GET", "/v2/deployments", NONE)
    assert apps.list_deployments(client(fake)) == "no deployment running"


def test_cancel_waits_for_the_rollback(fake, shown):
    fake.on("GET", "/v2/deployments", deploying("d16"), deploying("r1"), NONE)
    fake.on("DELETE", "/v2/deployments/d16", answer("r1"))
    fake.on("GET", "/v2/apps/hello2", app([task("t1")]))
    assert apps.cancel(client(fake), "d16", force=False, **FAST) == (
        "cancelled deployment d16; Marathon rolled it back with deployment r1, now finished: "
        "/hello2: 1/1 running")
    assert "marathon rollback of deployment d16: deployment r1 step 2/2" in shown.getvalue()


def test_cancel_with_force_says_nothing_was_rolled_back(fake):
    fake.on("GET", "/v2/deployments", deploying("d17"))
    fake.on("DELETE", "/v2/deployments/d17?force=true", (202, b""))
    fake.on("GET", "/v2/apps/hello2", app([task("t1")], 3))
    assert apps.cancel(client(fake), "d17", force=True, **FAST) == (
        "stopped deployment d17 WITHOUT rollback (--force): its apps stay as they are now, "
        "possibly part-way: /hello2: 1/3 running")


def test_cancel_of_an_unknown_deployment(fake):
    fake.on("GET", "/v2/deployments", deploying("d18"))
    with pytest.raises(MarathonError, match=r"^deployment nope is not running \(finished, or "
                                            r"never existed\); running now: d18$"):
        apps.cancel(client(fake), "nope", force=False, **FAST)
    # Finished between the list and the DELETE: Marathon's own 404.
    fake.on("DELETE", "/v2/deployments/d18", (404, {"message": "DeploymentPlan d18 does not exist"}))
    with pytest.raises(MarathonError, match=r"^deployment d18 does not exist \(DeploymentPlan d18 "
                                            r"does not exist\)$"):
        apps.cancel(client(fake), "d18", force=False, **FAST)


# --- app-list, app-show ---------------------------------------------------------------------------

def test_app_list_table(fake):
    web = {"id": "/web", "instances": 3, "tasksRunning": 2, "tasksStaged": 1, "tasksHealthy": 2,
           "healthChecks": [{"protocol": "MESOS_HTTP"}], "deployments": [{"id": "d19"}]}
    hello = {"id": "/hello2", "instances": 1, "tasksRunning": 1, "tasksStaged": 0,
             "tasksHealthy": 0, "deployments": []}
    fake.on("GET", "/v2/apps?embed=apps.tasks&embed=apps.lastTaskFailure",
            (200, {"apps": [web, hello]}), (200, {"apps": []}))
    assert apps.list_apps(client(fake)).splitlines() == [
        "ID       INSTANCES  RUNNING  HEALTHY  STAGED  DEPLOYMENT",
        "/hello2  1          1        -        0       -",
        "/web     3          2        2        1       d19"]
    assert apps.list_apps(client(fake)) == "no apps"


def test_app_show_with_failure_and_back_off(fake):
    fake.on("GET", "/v2/apps/hello2", app([task("hello2.a", host="slave3")], 2,
                                          lastTaskFailure=FAILURE, mem=16.0, cpus=0.1, disk=0.0,
                                          portDefinitions=[{"port": 10000}],
                                          constraints=[["hostname", "UNIQUE"]]))
    fake.on("GET", "/v2/queue", (200, {"queue": [
        {"count": 1, "delay": {"timeLeftSeconds": 12, "overdue": False}, "app": {"id": "/hello2"}},
        {"count": 1, "delay": {"timeLeftSeconds": 0, "overdue": True}, "app": {"id": "/other"}}]}))
    assert apps.show_app(client(fake), "/hello2").splitlines() == [
        f"/hello2  version {V1}",
        "  cmd: sleep 100",
        "  instances 2, cpus 0.1, mem 16.0 MB, disk 0.0 MB, ports 10000",
        "  constraints: hostname:UNIQUE",
        "  deployments: none",
        "  tasks: 1/2 running",
        f"    hello2.a  slave3  TASK_RUNNING  started {V1}",
        "  last task failure of /hello2: TASK_FAILED on slave2 at 2024-05-01T10:00:05.000Z: "
        "Command exited with status 1",
        "  launch queue: 1 waiting to launch, launch delayed 12 s more (back-off after failures)"]


def test_app_show_of_an_app_waiting_for_room(fake):
    fake.on("GET", "/v2/apps/big", app([], 1, "/big"))
    fake.on("GET", "/v2/queue", (200, {"queue": [
        {"count": 1, "delay": {"timeLeftSeconds": 0, "overdue": True}, "app": {"id": "/big"}}]}))
    assert apps.show_app(client(fake), "/big").splitlines()[-1] == (
        "  launch queue: 1 waiting to launch, no launch delay: waiting for an agent with room "
        "for it")


# --- the fab command line: one line, exit 1, nothing sent for a bad file --------------------------

@pytest.fixture
def fab(monkeypatch, capsys):
    """Run the real `fab` program in this process on the project's hosts.ini, its first master
    pointed at a fake Marathon (the inventory refuses loopback addresses, rightly)."""
    from fabric.main import program

    def run(fake, *args):
        port = int(fake.url.rsplit(":", 1)[1])
        real = cli.target_hosts

        def on_loopback(c, cluster, roles):
            return [dataclasses.replace(h, ip="127.0.0.1", settings=dataclasses.replace(
                h.settings, marathon_port=port)) for h in real(c, cluster, roles)][:1]

        monkeypatch.setattr(cli, "target_hosts", on_loopback)
        monkeypatch.setenv("FABRIC_INVENTORY", str(ROOT / "hosts.ini"))
        monkeypatch.chdir(ROOT)
        code = 0
        try:
            program.run(["fab", *args])
        except SystemExit as e:
            code = e.code
        out = capsys.readouterr()
        return code, out.out, out.err
    return run


def test_fab_errors_are_one_line_with_exit_code_1(fake, fab):
    fake.on("GET", "/v2/apps/nope", MISSING)
    code, _, err = fab(fake, "app-show", "--id", "/nope")
    assert (code, err) == (1, "app-show failed: app /nope does not exist (App '/nope' does not "
                              "exist)\n")
    fake.on("GET", "/v2/deployments", (200, b'[{"id": NaN}]'))
    code, _, err = fab(fake, "deployments")
    assert code == 1 and len(err.splitlines()) == 1 and "NaN is not valid JSON" in err


def test_fab_deploy_app_refuses_nan_before_any_request(fake, fab, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"id": "hello2", "cmd": "sleep 1", "cpus": NaN}')
    code, _, err = fab(fake, "deploy-app", "--file", str(bad))
    assert code == 1
    assert f"{bad}: invalid definition:\n  cpus: must be a number > 0, got NaN" in err
    assert fake.requests == []


def test_fab_app_scale_runs_against_marathon(fake, fab):
    fake.on("GET", "/v2/apps/hello2", app([task("t1")]), app([task("t1"), task("t2")], 2))
    fake.on("PUT", "/v2/apps/hello2", answer("d20"))
    fake.on("GET", "/v2/deployments", NONE)
    code, out, err = fab(fake, "app-scale", "--id", "/hello2", "--instances", "2",
                         "--timeout", "20")
    assert code == 0, err
    assert "scaled /hello2 from 1 to 2 instances (deployment d20): 2/2 running" in out
    code, _, err = fab(fake, "app-scale", "--id", "/hello2", "--instances", "two")
    assert (code, err) == (1, "app-scale failed: --instances must be a whole number, got 'two'\n")

