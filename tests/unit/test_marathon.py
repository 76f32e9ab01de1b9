"""tasks.marathon: validation cases as data; the HTTP client against a scripted fake Marathon on 127.0.0.1."""
import json
import socket

import pytest

from tasks.marathon import (AppDefinitionError, DeployResult, MarathonError, app_status, deploy,
                            format_result, leader, load_app_file, validate_app)
from tests.unit.fake_marathon import FakeMarathon

HELLO = {"id": "hello2", "cmd": "echo hello; sleep 10", "mem": 16, "cpus": 0.1, "instances": 1,
         "disk": 0.0, "ports": [0]}
SENT = {**HELLO, "id": "/hello2"}   # what validate_app turns HELLO into, and so what Marathon receives
VERSION = "2024-05-01T10:00:00.000Z"
TASK = {"id": "hello2.6a8f", "host": "192.0.2.4", "state": "TASK_RUNNING",
        "startedAt": "2024-05-01T10:00:02.000Z", "ports": [31000], "appId": "/hello2"}


# --- validation ------------------------------------------------------------------------------

VALID = [
    pytest.param(HELLO, "/hello2", id="tutorial-hello2"),
    pytest.param({"id": "/prod/web.v2/api-1", "args": ["serve", "--port", "80"]}, "/prod/web.v2/api-1",
                 id="nested-with-args"),
    pytest.param({"id": "db", "container": {"type": "DOCKER", "docker": {"image": "redis"}}}, "/db",
                 id="container-only"),
    pytest.param({"id": "a", "cmd": "x", "container": {"type": "MESOS"}, "instances": 0, "gpus": 0},
                 "/a", id="cmd-with-container-zero-instances"),
    pytest.param({"id": "a", "cmd": "x", "args": None, "container": None, "env": {"A": "1"},
                  "constraints": [["hostname", "UNIQUE"], ["rack", "LIKE", "r1"]],
                  "healthChecks": "unchecked", "labels": {"x": "y"}}, "/a", id="nulls-and-unknown-fields"),
    pytest.param({"id": "a", "cmd": "x", "env": {"DB_PASSWORD": {"secret": "pw"}}}, "/a",
                 id="env-secret-reference"),
]

INVALID = [  # (data, text every message must contain)
    pytest.param({"id": "Hello_2", "cmd": "x"}, "id: 'Hello_2' is not valid: segments must match", id="uppercase-id"),
    pytest.param({"id": "-web", "cmd": "x"}, "id: '-web' is not valid", id="leading-dash"),
    pytest.param({"id": "/a//b", "cmd": "x"}, "id: '/a//b' is not valid", id="empty-segment"),
    pytest.param({"id": "/a/../b", "cmd": "x"}, "id: '/a/../b' is not valid: relative", id="dotdot"),
    pytest.param({"id": "/web/restart", "cmd": "x"}, "id: '/web/restart' is not valid: the last segment",
                 id="reserved-last-segment"),
    pytest.param({"cmd": "x"}, "id: required", id="missing-id"),
    pytest.param({"id": 7, "cmd": "x"}, "id: must be a string, got 7", id="numeric-id"),
    pytest.param({"id": "/", "cmd": "x"}, "id: '/' is not valid: it must not be empty", id="root-id"),
    pytest.param({"id": "a"}, "cmd/args/container: exactly one of cmd or args, or a container, is required",
                 id="no-command"),
    pytest.param({"id": "a", "cmd": "x", "args": ["y"]}, "cmd/args: give either cmd or args, not both",
                 id="cmd-and-args"),
    pytest.param({"id": "a", "cmd": "  "}, "cmd: must be a non-empty string", id="blank-cmd"),
    pytest.param({"id": "a", "args": ["x", 1]}, "args: must be a non-empty list of strings", id="args-not-strings"),
    pytest.param({"id": "a", "container": "docker"}, "container: must be an object", id="container-string"),
    pytest.param({"id": "a", "cmd": "x", "cpus": "a lot"}, 'cpus: must be a number > 0, got "a lot"', id="cpus-text"),
    pytest.param({"id": "a", "cmd": "x", "cpus": 0}, "cpus: must be a number > 0, got 0", id="cpus-zero"),
    pytest.param({"id": "a", "cmd": "x", "mem": True}, "mem: must be a number > 0, got true", id="mem-bool"),
    pytest.param({"id": "a", "cmd": "x", "disk": -1}, "disk: must be a number >= 0, got -1", id="disk-negative"),
    pytest.param({"id": "a", "cmd": "x", "gpus": "1"}, 'gpus: must be a number >= 0, got "1"', id="gpus-text"),
    pytest.param({"id": "a", "cmd": "x", "instances": 1.5}, "instances: must be an integer >= 0, got 1.5",
                 id="instances-float"),
    pytest.param({"id": "a", "cmd": "x", "instances": True}, "instances: must be an integer >= 0, got true",
                 id="instances-bool"),
    pytest.param({"id": "a", "cmd": "x", "ports": [80, 70000]}, "ports[1]: must be an integer 0-65535, got 70000",
                 id="port-range"),
    pytest.param({"id": "a", "cmd": "x", "ports": 80}, "ports: must be a list", id="ports-not-list"),
    pytest.param({"id": "a", "cmd": "x", "env": {"N": 5}}, "env.N: must be a string, got 5", id="env-number"),
    pytest.param({"id": "a", "cmd": "x", "constraints": ["hostname", "UNIQUE"]},
                 'constraints: must be a list of [field, operator(, value)] lists', id="constraints-flat"),
    pytest.param({"id": "a", "cmd": "x", "constraints": [["hostname"]]},
                 'constraints[0]: must be a list of 2 or 3 strings', id="constraint-too-short"),
    pytest.param(["not", "an", "object"], "(top level): must be a JSON object, got list", id="top-level-list"),
]


@pytest.mark.parametrize("data, app_id", VALID)
def test_valid_apps_come_back_with_an_absolute_id(data, app_id):
    assert validate_app(data) == {**data, "id": app_id}


@pytest.mark.parametrize("data, expected", INVALID)
def test_invalid_apps_name_the_field(data, expected):
    with pytest.raises(AppDefinitionError) as e:
        validate_app(data)
    assert len(e.value.problems) == 1
    assert expected in e.value.problems[0]


def test_every_problem_is_reported_at_once():
    with pytest.raises(AppDefinitionError) as e:
        validate_app({"id": "Web", "cpus": -1, "ports": ["80"]})
    assert [p.split(":")[0] for p in e.value.problems] == ["id", "cmd/args/container", "cpus", "ports[0]"]
    assert "cpus: must be a number > 0, got -1" in str(e.value)


def test_validate_app_does_not_modify_its_argument():
    data = {"id": "a", "cmd": "x"}
    validate_app(data)
    assert data == {"id": "a", "cmd": "x"}


def test_load_app_file_reads_and_validates(tmp_path):
    path = tmp_path / "hello.json"
    path.write_text(json.dumps(HELLO))
    assert load_app_file(path) == SENT


def test_load_app_file_points_at_malformed_json(tmp_path):
    path = tmp_path / "hello.json"
    path.write_text('{\n  "id": "hello2",\n  "cmd": "echo hello" "mem": 16\n}\n')
    with pytest.raises(AppDefinitionError, match=rf"{path}:3:23: malformed JSON: Expecting ','"):
        load_app_file(path)


def test_load_app_file_reports_a_missing_file(tmp_path):
    with pytest.raises(AppDefinitionError, match=r"file not found: .*nope\.json"):
        load_app_file(tmp_path / "nope.json")


def test_load_app_file_names_the_file_for_invalid_apps(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"id": "Hello_2", "cmd": "x"}')
    with pytest.raises(AppDefinitionError, match=rf"^{path}: invalid app definition:\n  id: 'Hello_2'"):
        load_app_file(path)


# --- a scripted fake Marathon ----------------------------------------------------------------

@pytest.fixture(autouse=True)
def no_proxy_for_loopback(monkeypatch):
    # requests honours *_PROXY from the environment; the fake servers must be reached directly.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def marathons():
    started = []

    def start():
        started.append(FakeMarathon())
        return started[-1]

    yield start
    for fake in started:
        fake.close()


@pytest.fixture
def marathon(marathons):
    return marathons()


@pytest.fixture
def closed_port_url():
    # Bind then close: nothing listens there, so connecting is refused at once.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def running_app(tasks_running=1, instances=1, **extra):
    return (200, {"app": {**SENT, "instances": instances, "tasksRunning": tasks_running, "tasksStaged": 0,
                          "tasks": [TASK] * tasks_running, "deployments": [], "version": VERSION, **extra}})


CREATED = (201, {**SENT, "version": VERSION, "deployments": [{"id": "dep-1"}]},
           {"Marathon-Deployment-Id": "dep-1", "Location": "/v2/apps/hello2"})
DEPLOYING = (200, [{"id": "dep-1", "version": VERSION, "affectedApps": ["/hello2"], "currentStep": 1,
                    "totalSteps": 1, "currentActions": [{"action": "StartApplication", "app": "/hello2"}]}])
NO_DEPLOYMENTS = (200, [])
FAST = {"timeout": 1.5, "poll_interval": 0.01}


def test_create_then_wait_for_the_deployment_and_report_tasks(marathon):
    marathon.on("POST", "/v2/apps", CREATED)
    marathon.on("GET", "/v2/deployments", DEPLOYING, DEPLOYING, NO_DEPLOYMENTS)
    marathon.on("GET", "/v2/apps/hello2", running_app())
    logs = []

    result = deploy(HELLO, [marathon.url], log=logs.append, **FAST)

    assert result == DeployResult(app_id="/hello2", created=True, deployment_id="dep-1", version=VERSION,
                                  endpoint=marathon.url, instances=1,
                                  tasks=[{k: TASK[k] for k in ("id", "host", "state", "startedAt")}])
    assert marathon.requests == [("POST", "/v2/apps", SENT)] + [("GET", "/v2/deployments", None)] * 3 \
        + [("GET", "/v2/apps/hello2", None)]
    assert any("deployment still running, step 1/1 StartApplication /hello2" in line for line in logs)


def test_deployment_id_falls_back_to_the_body_and_tasks_are_awaited(marathon):
    created, body, _headers = CREATED
    marathon.on("POST", "/v2/apps", (created, body))
    marathon.on("GET", "/v2/deployments", NO_DEPLOYMENTS)
    marathon.on("GET", "/v2/apps/hello2", running_app(0, 2), running_app(1, 2), running_app(2, 2))

    result = deploy({**HELLO, "instances": 2}, [marathon.url], log=lambda _: None, **FAST)

    assert (result.deployment_id, len(result.tasks), result.instances) == ("dep-1", 2, 2)
    assert [r[:2] for r in marathon.requests] == [("POST", "/v2/apps")] + \
        [("GET", "/v2/deployments"), ("GET", "/v2/apps/hello2")] * 3


def test_existing_app_is_updated_with_put(marathon):
    marathon.on("POST", "/v2/apps", (409, {"message": "An app with id [/hello2] already exists."}))
    marathon.on("PUT", "/v2/apps/hello2", (200, {"deploymentId": "dep-2", "version": VERSION}))
    marathon.on("GET", "/v2/deployments", NO_DEPLOYMENTS)
    marathon.on("GET", "/v2/apps/hello2", running_app())

    result = deploy(HELLO, [marathon.url], log=lambda _: None, **FAST)

    assert (result.created, result.deployment_id, result.version) == (False, "dep-2", VERSION)
    assert marathon.requests == [("POST", "/v2/apps", SENT), ("PUT", "/v2/apps/hello2", SENT),
                                 ("GET", "/v2/deployments", None), ("GET", "/v2/apps/hello2", None)]
    assert format_result(result).splitlines()[0] == \
        f"updated /hello2 (version {VERSION}, deployment dep-2) via {marathon.url}"


def test_existing_app_without_update_is_an_error_naming_the_flag(marathon):
    marathon.on("POST", "/v2/apps", (409, {"message": "An app with id [/hello2] already exists."}))

    with pytest.raises(MarathonError, match=r"app /hello2 already exists .*run without --no-update"):
        deploy(HELLO, [marathon.url], update=False, log=lambda _: None, **FAST)
    assert marathon.requests == [("POST", "/v2/apps", SENT)]


LOCKED = (409, {"message": "App is locked by one or more deployments. Override with the option "
                           "'?force=true'. View details at '/v2/deployments/<DEPLOYMENT_ID>'.",
                "deployments": [{"id": "dep-0"}]})


def test_locked_app_is_reported_and_not_forced(marathon):
    marathon.on("POST", "/v2/apps", (409, {"message": "exists"}))
    marathon.on("PUT", "/v2/apps/hello2", LOCKED)

    with pytest.raises(MarathonError, match=r"/hello2 is locked by deployment\(s\) dep-0 .*--force"):
        deploy(HELLO, [marathon.url], log=lambda _: None, **FAST)
    assert [r[:2] for r in marathon.requests] == [("POST", "/v2/apps"), ("PUT", "/v2/apps/hello2")]


def test_force_overrides_the_lock(marathon):
    marathon.on("POST", "/v2/apps", (409, {"message": "exists"}))
    marathon.on("PUT", "/v2/apps/hello2?force=true", (200, {"deploymentId": "dep-3", "version": VERSION}))
    marathon.on("GET", "/v2/deployments", NO_DEPLOYMENTS)
    marathon.on("GET", "/v2/apps/hello2", running_app())

    assert deploy(HELLO, [marathon.url], force=True, log=lambda _: None, **FAST).deployment_id == "dep-3"
    assert marathon.requests[1] == ("PUT", "/v2/apps/hello2?force=true", SENT)


def test_422_lists_marathons_details(marathon):
    marathon.on("POST", "/v2/apps", (422, {"message": "Object is not valid", "details": [
        {"path": "/mem", "errors": ["got 16.0, expected 32.0 or more"]},
        {"path": "/", "errors": ["AppDefinition must either contain one of 'cmd' or 'args'", "second"]}]}))

    with pytest.raises(MarathonError) as e:
        deploy(HELLO, [marathon.url], log=lambda _: None, **FAST)
    assert str(e.value) == ("Marathon refused app /hello2 (422 Object is not valid):\n"
                            "  /mem: got 16.0, expected 32.0 or more\n"
                            "  /: AppDefinition must either contain one of 'cmd' or 'args'; second")


def test_400_reports_the_message(marathon):
    marathon.on("POST", "/v2/apps", (400, {"message": "Invalid JSON"}))

    with pytest.raises(MarathonError, match=r"refused app /hello2 \(400 bad request\): Invalid JSON"):
        deploy(HELLO, [marathon.url], log=lambda _: None, **FAST)


def test_unexpected_status_is_reported_with_its_body(marathon):
    marathon.on("POST", "/v2/apps", (401, {"message": "Unauthorized"}))

    with pytest.raises(MarathonError, match=r"POST /v2/apps from .*: HTTP 401 .*Unauthorized"):
        deploy(HELLO, [marathon.url], log=lambda _: None, **FAST)


def test_invalid_app_is_refused_before_any_request(marathon):
    with pytest.raises(AppDefinitionError):
        deploy({"id": "Hello_2", "cmd": "x"}, [marathon.url], log=lambda _: None, **FAST)
    assert marathon.requests == []


def test_unreachable_first_master_is_skipped(marathon, closed_port_url):
    marathon.on("POST", "/v2/apps", CREATED)
    marathon.on("GET", "/v2/deployments", NO_DEPLOYMENTS)
    marathon.on("GET", "/v2/apps/hello2", running_app())
    logs = []

    result = deploy(HELLO, [closed_port_url, marathon.url], log=logs.append, **FAST)

    assert result.endpoint == marathon.url
    assert logs[0].startswith(f"marathon: POST /v2/apps: skipping {closed_port_url} (ConnectionError")
    # The answering master is asked first from then on: one skip note only.
    assert sum("skipping" in line for line in logs) == 1
    assert [r[:2] for r in marathon.requests] == [("POST", "/v2/apps"), ("GET", "/v2/deployments"),
                                                  ("GET", "/v2/apps/hello2")]


def test_master_without_leader_is_skipped(marathons):
    no_leader, good = marathons(), marathons()
    no_leader.on("POST", "/v2/apps", (502, {"message": "Could not determine the current leader"}))
    good.on("POST", "/v2/apps", CREATED)
    good.on("GET", "/v2/deployments", NO_DEPLOYMENTS)
    good.on("GET", "/v2/apps/hello2", running_app())
    logs = []

    assert deploy(HELLO, [no_leader.url, good.url], log=logs.append, **FAST).endpoint == good.url
    assert f"skipping {no_leader.url} (HTTP 502 Could not determine the current leader)" in logs[0]
    assert no_leader.requests == [("POST", "/v2/apps", SENT)]


def test_all_masters_unreachable_names_each_one(closed_port_url, marathons):
    unavailable = marathons()
    unavailable.on("POST", "/v2/apps", (503, {"message": "not ready"}))

    with pytest.raises(MarathonError) as e:
        deploy(HELLO, [closed_port_url, unavailable.url], log=lambda _: None, **FAST)
    message = str(e.value)
    assert message.startswith("no Marathon master answered POST /v2/apps:")
    assert f"{closed_port_url}: ConnectionError" in message
    assert f"{unavailable.url}: HTTP 503 not ready" in message


def test_deployment_that_never_finishes_times_out(marathon):
    marathon.on("POST", "/v2/apps", CREATED)
    marathon.on("GET", "/v2/deployments", DEPLOYING)

    with pytest.raises(MarathonError) as e:
        deploy(HELLO, [marathon.url], log=lambda _: None, timeout=0.3, poll_interval=0.05)
    assert str(e.value) == ("deployment dep-1 of /hello2 did not finish within 0.3 s; last state: "
                            "deployment still running, step 1/1 StartApplication /hello2")
    assert marathon.requests[0] == ("POST", "/v2/apps", SENT)
    assert {r[:2] for r in marathon.requests[1:]} == {("GET", "/v2/deployments")}


def test_tasks_that_never_run_time_out_with_the_app_state(marathon):
    marathon.on("POST", "/v2/apps", CREATED)
    marathon.on("GET", "/v2/deployments", NO_DEPLOYMENTS)
    marathon.on("GET", "/v2/apps/hello2", running_app(0, 1, tasksStaged=1))

    with pytest.raises(MarathonError, match=r"did not finish within 0.2 s; last state: deployment finished; "
                                            r"0/1 tasks running, 1 staged$"):
        deploy(HELLO, [marathon.url], log=lambda _: None, timeout=0.2, poll_interval=0.05)


def test_deployment_gone_with_a_new_task_failure_is_a_failure(marathon):
    failure = {"message": "Command exited with status 127", "state": "TASK_FAILED", "host": "192.0.2.4",
               "timestamp": "2024-05-01T10:00:05.000Z", "version": VERSION, "appId": "/hello2"}
    marathon.on("POST", "/v2/apps", CREATED)
    marathon.on("GET", "/v2/deployments", NO_DEPLOYMENTS)
    marathon.on("GET", "/v2/apps/hello2", running_app(0, 1, lastTaskFailure=failure))

    with pytest.raises(MarathonError, match=r"deployment dep-1 of /hello2 failed: 0/1 tasks running; last task "
                                            r"failure TASK_FAILED .* on 192.0.2.4: Command exited with status 127"):
        deploy(HELLO, [marathon.url], log=lambda _: None, timeout=1, poll_interval=0.05)
    assert len(marathon.requests) == 3   # failed at the first look, no waiting for the timeout


def test_an_old_task_failure_is_not_blamed_on_this_deployment(marathon):
    old = {"message": "old", "state": "TASK_FAILED", "timestamp": "2024-04-01T00:00:00.000Z",
           "version": "2024-03-01T00:00:00.000Z"}
    marathon.on("POST", "/v2/apps", CREATED)
    marathon.on("GET", "/v2/deployments", NO_DEPLOYMENTS)
    marathon.on("GET", "/v2/apps/hello2", running_app(0, lastTaskFailure=old), running_app(1, lastTaskFailure=old))

    assert len(deploy(HELLO, [marathon.url], log=lambda _: None, **FAST).tasks) == 1


def test_app_status_and_leader(marathon):
    marathon.on("GET", "/v2/apps/hello2", running_app())
    marathon.on("GET", "/v2/leader", (200, {"leader": "192.0.2.1:8080"}))

    assert app_status("hello2", [marathon.url])["tasksRunning"] == 1
    assert leader([marathon.url]) == "192.0.2.1:8080"
    assert marathon.requests == [("GET", "/v2/apps/hello2", None), ("GET", "/v2/leader", None)]


def test_app_status_of_a_missing_app_and_no_leader(marathon):
    marathon.on("GET", "/v2/apps/nope", (404, {"message": "App '/nope' does not exist"}))
    marathon.on("GET", "/v2/leader", (404, {"message": "There is no leader"}))

    with pytest.raises(MarathonError, match=r"app /nope does not exist"):
        app_status("/nope", [marathon.url])
    with pytest.raises(MarathonError, match=r"no Marathon leader is elected"):
        leader([marathon.url])


def test_no_endpoints_is_an_error():
    with pytest.raises(MarathonError, match="no Marathon endpoint given"):
        leader([])


def test_format_result_lists_tasks():
    result = DeployResult(app_id="/hello2", created=True, deployment_id="dep-1", version=VERSION,
                          endpoint="http://192.0.2.1:8080", instances=1,
                          tasks=[{"id": "hello2.6a8f", "host": "192.0.2.4", "state": "TASK_RUNNING",
                                  "startedAt": "2024-05-01T10:00:02.000Z"}])
    assert format_result(result) == (
        f"created /hello2 (version {VERSION}, deployment dep-1) via http://192.0.2.1:8080\n"
        "  1/1 tasks\n"
        "  hello2.6a8f  192.0.2.4  TASK_RUNNING  started 2024-05-01T10:00:02.000Z")
