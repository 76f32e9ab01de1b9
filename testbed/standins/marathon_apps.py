"""Marathon app definitions: id rules, validation, defaults (test equipment, pure functions).

Follows Marathon's REST v2 (mesosphere/marathon: docs/rest-api, app.raml): the same
id pattern, reserved last segments, "exactly one of cmd/args, or a container", the defaults
(cpus 1, mem 128, disk 0, instances 1) and the 422 body shape; groups flattened into their apps
as GroupsResource does; deployment steps as Marathon's DeploymentPlan orders them (stop removed
apps, start new ones at 0 instances, then scale or restart). Kept apart from the daemon so that
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


def group_apps(group, base="/"):
    """A group body (POST/PUT /v2/groups) -> ({app id: app body with absolute id}, 422 details).

    App and subgroup ids are relative to their enclosing group; details are placed as
    Marathon's group validation places them (/apps(0)/cmd, /groups(1)/apps(0)/id)."""
    found, details = {}, []
    if not isinstance(group, dict) or not isinstance(group.get("id", ""), str):
        return found, [{"path": "/id", "errors": ["error.expected.jsstring"]}]
    group_id = canonical_id(group.get("id") or base, base)
    for key in ("apps", "groups"):
        if not isinstance(group.get(key, []), list):
            details.append({"path": f"/{key}", "errors": ["error.expected.jsarray"]})
    for i, app in enumerate(group.get("apps") or [] if isinstance(group.get("apps"), list) else []):
        if not isinstance(app, dict):
            details.append({"path": f"/apps({i})", "errors": ["error.expected.jsobject"]})
            continue
        app_details = validate(app)
        details += [dict(d, path=f"/apps({i})" + d["path"].rstrip("/")) for d in app_details]
        if not app_details:
            app_id = canonical_id(app["id"], group_id)
            if not app_id.startswith(group_id.rstrip("/") + "/"):
                details.append({"path": f"/apps({i})/id", "errors": [
                    f"identifier {app_id} is not child of {group_id}. Hint: use relative paths."]})
            found[app_id] = dict(app, id=app_id)
    for i, sub in enumerate(group.get("groups") or []
                            if isinstance(group.get("groups"), list) else []):
        sub_apps, sub_details = group_apps(sub, group_id)
        found.update(sub_apps)
        details += [dict(d, path=f"/groups({i})" + d["path"]) for d in sub_details]
    return found, details


def config_of(app):
    """What a change must keep for it to be a scale only: all but instances and versions, with
    the last config change (a restart moves it)."""
    strip = ("instances", "version", "versionInfo")
    return ({k: v for k, v in app.items() if k not in strip},
            app.get("versionInfo", {}).get("lastConfigChangeAt"))


def plan_steps(original, target):
    """{app id: app or None} before and after -> Marathon's deployment steps: stop the removed
    apps, start the new ones (at 0 instances), then scale or restart; empty steps dropped."""
    stops = [a for a in sorted(original) if original[a] and not target.get(a)]
    starts = [a for a in sorted(target) if target[a] and not original.get(a)]
    later = []
    for app_id in sorted(target):
        new, old = target[app_id], original.get(app_id)
        if not new:
            continue
        same_config = old is not None and config_of(old) == config_of(new)
        if old is None or (same_config or new["instances"] == 0) and (
                not same_config or old["instances"] != new["instances"]):
            later.append(("ScaleApplication", app_id))   # new, scale only, or scaled to 0
        elif not same_config:
            later.append(("RestartApplication", app_id))
    steps = [[("StopApplication", a) for a in stops], [("StartApplication", a) for a in starts],
             later]
    return [{"actions": [{"action": action, "app": a} for action, a in step]}
            for step in steps if step]


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
