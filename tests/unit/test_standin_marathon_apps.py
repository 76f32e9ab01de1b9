"""Marathon app rules of the stand-in (test equipment): ids, cmd/args/container, defaults."""
import pytest

from testbed.standins import marathon_apps as apps


@pytest.mark.parametrize("app_id", ["hello2", "/hello2", "/prod/web.v1", "a", "/a-b/c"])
def test_valid_ids(app_id):
    assert apps.validate({"id": app_id, "cmd": "true"}) == []


@pytest.mark.parametrize("app_id", ["Hello", "/a_b", "-a", "/x/tasks", "/x/restart", "a-"])
def test_invalid_ids_are_reported_on_id(app_id):
    details = apps.validate({"id": app_id, "cmd": "true"})
    assert [d["path"] for d in details] == ["/id"]


@pytest.mark.parametrize("body", [{"id": "x"}, {"id": "x", "cmd": "a", "args": ["b"]}])
def test_exactly_one_of_cmd_or_args_unless_container(body):
    assert apps.validate(body) == [{"path": "/", "errors": [apps.CMD_RULE]}]
    assert apps.validate(dict(body, cmd=None, args=None, container={"type": "DOCKER"})) == []


def test_negative_and_non_numeric_values():
    details = apps.validate({"id": "x", "cmd": "c", "instances": -1, "mem": "lots"})
    assert {"path": "/instances", "errors": ["got -1, expected 0 or more"]} in details
    assert {"path": "/mem", "errors": ["error.expected.jsnumber"]} in details


def test_defaults_and_ports():
    full = apps.with_defaults({"id": "hello2", "cmd": "echo hello; sleep 10", "ports": [0]})
    assert full["id"] == "/hello2"
    assert (full["cpus"], full["mem"], full["disk"], full["instances"]) == (1.0, 128.0, 0.0, 1)
    assert full["portDefinitions"] == [{"port": 0, "protocol": "tcp", "labels": {}}]


def test_task_ids_round_trip():
    tid = apps.task_id("/group/web")
    assert tid.startswith("group_web.") and apps.app_of_task(tid) == "/group/web"
    assert apps.canonical_id("a/../b") == "/b"


def _app(app_id, instances=1, cmd="c", config="2024-01-01T00:00:00.000Z"):
    app = apps.with_defaults({"id": app_id, "cmd": cmd, "instances": instances})
    app["versionInfo"]["lastConfigChangeAt"] = config
    return app


def test_deployment_steps_as_marathons_plan_orders_them():
    old = {"/a": _app("/a"), "/b": _app("/b"), "/c": _app("/c"), "/d": _app("/d"), "/e": None}
    new = {"/a": None, "/b": _app("/b", 3), "/c": _app("/c", cmd="other"), "/d": _app("/d"),
           "/e": _app("/e")}
    assert apps.plan_steps(old, new) == [
        {"actions": [{"action": "StopApplication", "app": "/a"}]},
        {"actions": [{"action": "StartApplication", "app": "/e"}]},
        {"actions": [{"action": "ScaleApplication", "app": "/b"},
                     {"action": "RestartApplication", "app": "/c"},
                     {"action": "ScaleApplication", "app": "/e"}]}]


def test_a_restart_is_a_config_change_and_scaling_to_zero_a_scale():
    restarted = _app("/a", config="2024-02-02T00:00:00.000Z")
    assert apps.plan_steps({"/a": _app("/a")}, {"/a": restarted}) == [
        {"actions": [{"action": "RestartApplication", "app": "/a"}]}]
    assert apps.plan_steps({"/a": _app("/a")}, {"/a": _app("/a", 0, cmd="changed")}) == [
        {"actions": [{"action": "ScaleApplication", "app": "/a"}]}]
    assert apps.plan_steps({"/a": _app("/a")}, {"/a": _app("/a")}) == []


def test_group_apps_are_flattened_with_ids_relative_to_their_group():
    found, details = apps.group_apps({"id": "/shop", "apps": [{"id": "front", "cmd": "c"}],
                                      "groups": [{"id": "jobs", "apps": [{"id": "x", "cmd": "c"}]}]})
    assert details == [] and sorted(found) == ["/shop/front", "/shop/jobs/x"]
    _, details = apps.group_apps({"id": "/shop", "apps": [{"id": "Bad", "cmd": "c"}, 7]})
    assert [d["path"] for d in details] == ["/apps(0)/id", "/apps(1)"]
