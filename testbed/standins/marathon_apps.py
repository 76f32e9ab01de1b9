"""Marathon app definitions: id rules, validation, defaults (test equipment, pure functions).

Follows Marathon's REST v2 (mesosphere/marathon: docs/rest-api, app.raml): the same
id pattern, reserved last segments, "exactly one of cmd/args, or a container", the defaults
(cpus 1, mem 128, disk 0, instances 1) and the 422 body shape. Kept apart from the daemon so that
the rules can be tested without ZooKeeper or HTTP.
"""
import re
import time
import uuid

ID_SEGMENT = re.compile(
    r"^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])|(\.|\.\.)$")
RESERVED = ("restart", "tasks", "versions", ".", "..")
CMD_RULE = "AppDefinition must either contain one of 'cmd' or 'args', and/or a 'container'."

DEFAULTS = {
    "cmd": None, "args": None, "user": None, "env": {}, "instances": 1, "cpus": 1.0,
    "mem": 128.0, "disk": 0.0, "gpus": 0, "executor": "", "constraints": [], "uris": [],
    "fetch": [], "storeUrls": [], "backoffSeconds": 1, "backoffFactor": 1.15,
    "maxLaunchDelaySeconds": 3600, "container": None, "healthChecks": [],
    "readinessChecks": [], "dependencies": [], "labels": {}, "ipAddress": None,
    "acceptedResourceRoles": None, "requirePorts": False, "killSelection": "YOUNGEST_FIRST",
    "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 1},
    "unreachableStrategy": {"inactiveAfterSeconds": 300, "expungeAfterSeconds": 600},
}
_NUMBERS = ("instances", "cpus", "mem", "disk", "gpus", "backoffSeconds", "backoffFactor",
            "maxLaunchDelaySeconds")


def canonical_id(app_id, base="/"):
    """'hello2' -> '/hello2'; 'a/../b' style segments resolved as Marathon's PathId does."""
    path = app_id if app_id.startswith("/") else base.rstrip("/") + "/" + app_id
    parts = []
    for seg in path.split("/"):
        if seg in ("", "."):
            continue
        if seg == "..":
            if parts:
                parts.pop()
            continue
        parts.append(seg)
    return "/" + "/".join(parts)


def validate(app):
    """Marathon's checks -> [{'path': ..., 'errors': [...]}], empty when valid."""
    details = []

    def err(path, message):
        for d in details:
            if d["path"] == path:
                d["errors"].append(message)
                return
        details.append({"path": path, "errors": [message]})

    app_id = app.get("id")
    if not isinstance(app_id, str) or not app_id.strip("/"):
        err("/id", "error.path.missing" if app_id is None else "must not be empty")
    else:
        segments = [s for s in app_id.split("/") if s]
        for seg in segments:
            if not ID_SEGMENT.fullmatch(seg):
                err("/id", "must fully match regular expression '" + ID_SEGMENT.pattern + "'")
                break
        if segments and segments[-1] in RESERVED:
            err("/id", "must not end with any of the following reserved words: "
                       + ", ".join(RESERVED))
    for name in _NUMBERS:
        value = app.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            err("/" + name, "error.expected.jsnumber")
        elif value < 0:
            err("/" + name, f"got {value}, expected 0 or more")
    has_cmd, has_args = app.get("cmd") is not None, app.get("args") is not None
    if (has_cmd == has_args) and not app.get("container"):
        err("/", CMD_RULE)
    elif has_cmd and has_args:
        err("/", CMD_RULE)
    if has_cmd and not isinstance(app["cmd"], str):
        err("/cmd", "error.expected.jsstring")
    if has_args and not (isinstance(app["args"], list)
                         and all(isinstance(a, str) for a in app["args"])):
        err("/args", "error.expected.jsarray")
    return details


def timestamp(t=None):
    """Marathon's ISO-8601 form: 2017-01-01T12:00:00.000Z."""
    t = time.time() if t is None else t
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


def with_defaults(app, version=None):
    """The full definition Marathon stores and returns: defaults filled, ports mapped."""
    full = {"id": canonical_id(app["id"])}
    for key, default in DEFAULTS.items():
        value = app.get(key, default)
        full[key] = dict(value) if isinstance(value, dict) else value
    for key in ("cpus", "mem", "disk"):
        full[key] = float(full[key])
    if "portDefinitions" in app:
        full["portDefinitions"] = app["portDefinitions"]
    else:  # 0.x's "ports" become 1.x's portDefinitions
        full["portDefinitions"] = [{"port": p, "protocol": "tcp", "labels": {}}
                                   for p in app.get("ports", [0])]
    version = version or timestamp()
    full["version"] = version
    full["versionInfo"] = {"lastScalingAt": version, "lastConfigChangeAt": version}
    return full


def task_id(app_id):
    """Marathon 1.x task ids: '/group/app' -> 'group_app.<uuid>'."""
    return app_id.strip("/").replace("/", "_") + "." + str(uuid.uuid4())


def app_of_task(tid):
    """Inverse of task_id: 'group_app.<uuid>' -> '/group/app' (ids never contain '_')."""
    return "/" + tid.rsplit(".", 1)[0].replace("_", "/")
