"""tasks.marathon's validation, as data: apps and groups are refused before any request, with
every problem named by field (or by file, line and column for malformed JSON)."""
import json

import pytest

from tasks import http
from tasks.marathon import (AppDefinitionError, group_app_ids, load_definition, validate_app,
                            validate_group)

HELLO = {"id": "hello2", "cmd": "echo hello; sleep 10", "mem": 16, "cpus": 0.1, "instances": 1,
         "disk": 0.0, "ports": [0]}
SENT = {**HELLO, "id": "/hello2"}   # what validate_app turns HELLO into, and so what Marathon receives


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


def test_load_definition_reads_and_validates(tmp_path):
    path = tmp_path / "hello.json"
    path.write_text(json.dumps(HELLO))
    assert load_definition(path) == ("app", SENT)


def test_load_definition_points_at_malformed_json(tmp_path):
    path = tmp_path / "hello.json"
    path.write_text('{\n  "id": "hello2",\n  "cmd": "echo hello" "mem": 16\n}\n')
    with pytest.raises(AppDefinitionError, match=rf"{path}:3:23: malformed JSON: Expecting ','"):
        load_definition(path)


def test_load_definition_reports_a_missing_file(tmp_path):
    with pytest.raises(AppDefinitionError, match=r"file not found: .*nope\.json"):
        load_definition(tmp_path / "nope.json")


def test_load_definition_names_the_file_for_invalid_apps(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"id": "Hello_2", "cmd": "x"}')
    with pytest.raises(AppDefinitionError, match=rf"^{path}: invalid definition:\n  id: 'Hello_2'"):
        load_definition(path)


# --- values JSON cannot carry, nesting Marathon refuses ---------------------------------------

@pytest.mark.parametrize("text, expected", [
    ('{"id": "a", "cmd": "x", "mem": NaN}', "mem: nan is not a number JSON can carry"),
    ('{"id": "a", "cmd": "x", "cpus": Infinity}', "cpus: inf is not a number JSON can carry"),
    ('{"id": "a", "cmd": "x", "labels": {"w": -Infinity}}',
     "labels.w: -inf is not a number JSON can carry"),
    ('{"id": "a", "cmd": "x", "healthChecks": [{"intervalSeconds": NaN}]}',
     "healthChecks[0].intervalSeconds: nan is not a number"),
])
def test_nan_and_infinity_are_refused_naming_the_field(tmp_path, text, expected):
    path = tmp_path / "app.json"
    path.write_text(text)
    with pytest.raises(AppDefinitionError) as e:
        load_definition(path)
    assert any(p.startswith(expected) for p in e.value.problems), e.value.problems


@pytest.mark.parametrize("depth", [http.MAX_JSON_DEPTH, 5000])
def test_nesting_deeper_than_marathon_accepts_is_refused(tmp_path, depth):
    path = tmp_path / "deep.json"
    path.write_text('{"id": "a", "cmd": "x", "labels": {"x": ' + "[" * depth + "]" * depth + "}}")
    with pytest.raises(AppDefinitionError, match=rf"nested deeper than {http.MAX_JSON_DEPTH} "
                                                 r"levels, which Marathon refuses"):
        load_definition(path)


def test_nesting_within_the_limit_is_accepted(tmp_path):
    depth = http.MAX_JSON_DEPTH - 3     # the app object and "labels" and "x" are levels too
    path = tmp_path / "deep.json"
    path.write_text('{"id": "a", "cmd": "x", "labels": {"x": ' + "[" * depth + "]" * depth + "}}")
    assert load_definition(path)[0] == "app"


# --- groups ----------------------------------------------------------------------------------

GROUP = {"id": "/prod", "apps": [{"id": "web", "cmd": "serve", "instances": 2},
                                 {"id": "/prod/db", "cmd": "db"}],
         "groups": [{"id": "batch", "apps": [{"id": "cron", "cmd": "c"}]}]}


def test_a_group_file_is_a_group_with_absolute_ids(tmp_path):
    path = tmp_path / "group.json"
    path.write_text(json.dumps(GROUP))
    kind, group = load_definition(path)
    assert kind == "group"
    assert group_app_ids(group) == ["/prod/web", "/prod/db", "/prod/batch/cron"]
    assert group["groups"][0]["id"] == "/prod/batch"
    assert group["apps"][0] == {"id": "/prod/web", "cmd": "serve", "instances": 2}


def test_every_app_inside_a_group_is_validated_with_its_place():
    bad = {"id": "/prod", "apps": [{"id": "web", "cmd": "x", "cpus": 0}, {"id": "ok", "cmd": "x"}],
           "groups": [{"id": "batch", "apps": [{"id": "Cron"}]}, {"apps": []}]}
    with pytest.raises(AppDefinitionError) as e:
        validate_group(bad)
    assert e.value.problems == [
        "apps[0].cpus: must be a number > 0, got 0",
        "groups[0].apps[0].id: 'Cron' is not valid: segments must match "
        + e.value.problems[1].split("segments must match ", 1)[1],
        "groups[0].apps[0].cmd/args/container: exactly one of cmd or args, or a container, "
        "is required",
        'groups[1].id: required (the group\'s path, e.g. "/prod")']


def test_an_app_outside_its_group_is_refused():
    with pytest.raises(AppDefinitionError, match=r"apps\[0\]\.id: '/other/web' is not inside "
                                                 r"its group /prod"):
        validate_group({"id": "/prod", "apps": [{"id": "/other/web", "cmd": "x"}]})


def test_a_group_without_id_and_nan_inside_a_group(tmp_path):
    path = tmp_path / "group.json"
    path.write_text('{"apps": [{"id": "web", "cmd": "x", "mem": NaN}]}')
    with pytest.raises(AppDefinitionError) as e:
        load_definition(path)
    assert e.value.problems == ['id: required (the group\'s path, e.g. "/prod")',
                                "apps[0].mem: nan is not a number JSON can carry (NaN and "
                                "Infinity are not JSON)"]
