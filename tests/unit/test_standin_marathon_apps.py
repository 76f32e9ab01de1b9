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
