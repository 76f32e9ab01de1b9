"""Marathon: app and group definitions checked before any request, and THE client of its REST
v2 API (deploy-app, the app-* tasks, cluster-status and the rolling gates all use it).

Validation is pure, so a bad ``hello.json`` is refused before any master is contacted, with
every problem named by field. The client sends every request through tasks.http (a deadline,
a size cap, no redirects, strict JSON) to whichever master answers (a standby proxies to the
leader), and turns every failure into one MarathonError line::

    kind, definition = load_definition("hello.json")
    with Marathon.for_cluster(cluster) as m:
        change = m.submit(definition, kind)
        m.wait_for("deployment of /hello2", change, ["/hello2"],
                   lambda apps: (runs(apps["/hello2"], 1), "waiting"), timeout=120)
        print(m.leader(), m.app("/hello2")["tasksRunning"])

tasks/apps.py builds the operator's tasks (scale, restart, ...) on it.
"""
from __future__ import annotations

import functools
import json
import math
import re
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable
from urllib.parse import quote

from tasks import http, progress

# Marathon's own segment rule (app.raml), minus "." and "..": relative ids are not worth the risk.
SEGMENT_RE = re.compile(r"^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])$")
RESERVED_LAST_SEGMENTS = ("restart", "tasks", "versions")
POLL_INTERVAL = 1.0


class AppDefinitionError(ValueError):
    """The definition is unusable; ``problems`` lists every one, each starting with its field."""

    def __init__(self, problems, source=None):
        self.problems = list(problems)
        self.source = source
        head = f"{source}: " if source else ""
        super().__init__(head + "invalid definition:\n  " + "\n  ".join(self.problems))


class MarathonError(Exception):
    """Marathon refused, no master answered, or a deployment failed or timed out: one line
    (a few for a 422's field errors), never a traceback."""


class NoMasterAnswered(MarathonError):
    """No master gave an answer (all down, or all without a leader: 502/503). During a wait this
    is usually a leader election, so waits retry it until their deadline."""


# --- validation (pure) -----------------------------------------------------------------------

def _got(value):
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _is_number(value):
    # bool is an int subclass, but `"cpus": true` is a mistake, not 1 CPU.
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _check_id(app_id, problems, base="/"):
    if app_id is None:
        problems.append("id: required (e.g. \"hello2\" or \"/group/hello2\")")
        return None
    if not isinstance(app_id, str):
        problems.append(f"id: must be a string, got {_got(app_id)}")
        return None
    segments = app_id[1:].split("/") if app_id.startswith("/") else app_id.split("/")
    if segments == [""]:
        problems.append(f"id: {app_id!r} is not valid: it must not be empty")
        return None
    for segment in segments:
        if segment in (".", ".."):
            problems.append(f"id: {app_id!r} is not valid: relative segments '.' and '..' are "
                            f"not supported; give the full path")
            return None
        if not SEGMENT_RE.match(segment):
            problems.append(f"id: {app_id!r} is not valid: segments must match {SEGMENT_RE.pattern} "
                            f"(lowercase letters, digits, '-' inside, '.' between parts); "
                            f"{segment!r} does not")
            return None
    if segments[-1] in RESERVED_LAST_SEGMENTS:
        problems.append(f"id: {app_id!r} is not valid: the last segment must not be "
                        f"{', '.join(RESERVED_LAST_SEGMENTS)} (Marathon reserves them)")
        return None
    # Relative ids are relative to the enclosing group, as Marathon reads them.
    absolute = "/" + "/".join(segments) if app_id.startswith("/") else \
        base.rstrip("/") + "/" + "/".join(segments)
    if not (absolute + "/").startswith(base.rstrip("/") + "/"):
        problems.append(f"id: {app_id!r} is not inside its group {base}")
        return None
    return absolute


def _check_command(data, problems):
    # JSON null counts as absent: `GET /v2/apps/x` output carries "cmd": null etc.
    cmd, args, container = data.get("cmd"), data.get("args"), data.get("container")
    if cmd is not None and not (isinstance(cmd, str) and cmd.strip()):
        problems.append(f"cmd: must be a non-empty string, got {_got(cmd)}")
    if args is not None and not (isinstance(args, list) and args
                                 and all(isinstance(a, str) for a in args)):
        problems.append(f"args: must be a non-empty list of strings, got {_got(args)}")
    if container is not None and not isinstance(container, dict):
        problems.append(f"container: must be an object, got {_got(container)}")
    if cmd is not None and args is not None:
        problems.append("cmd/args: give either cmd or args, not both")
    elif cmd is None and args is None and container is None:
        problems.append("cmd/args/container: exactly one of cmd or args, or a container, is required")


TOO_DEEP = (f"(top level): nested deeper than {http.MAX_JSON_DEPTH} levels, which Marathon "
            f"refuses")


def _refuse_deep_nesting(data):
    """Checked first: walking a definition nested past Marathon's limit is pointless."""
    if http.json_depth(data) > http.MAX_JSON_DEPTH:
        raise AppDefinitionError([TOO_DEEP])


def _check_finite(data, problems):
    """NaN and Infinity: Python's json reads them, Marathon and the JSON standard do not."""
    stack = [("", data)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, float) and not math.isfinite(value):
            problems.append(f"{where or '(top level)'}: {value!r} is not a number JSON can carry "
                            f"(NaN and Infinity are not JSON)")
        elif isinstance(value, dict):
            stack.extend((f"{where}.{k}" if where else str(k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((f"{where}[{i}]", v) for i, v in enumerate(value))


def _app_problems(data, base="/") -> tuple[str | None, list[str]]:
    """(absolute app id or None, problems) for one app definition inside group `base`."""
    if not isinstance(data, dict):
        return None, [f"(top level): must be a JSON object, got {type(data).__name__}"]
    problems = []
    app_id = _check_id(data.get("id"), problems, base)
    _check_command(data, problems)

    for name, strict in (("cpus", True), ("mem", True), ("disk", False), ("gpus", False)):
        if name in data:
            value = data[name]
            if not (_is_number(value) and (value > 0 if strict else value >= 0)):
                problems.append(f"{name}: must be a number {'>' if strict else '>='} 0, got {_got(value)}")
    if "instances" in data and not (_is_int(data["instances"]) and data["instances"] >= 0):
        problems.append(f"instances: must be an integer >= 0, got {_got(data['instances'])}")

    if "ports" in data:
        ports = data["ports"]
        if not isinstance(ports, list):
            problems.append(f"ports: must be a list of integers 0-65535, got {_got(ports)}")
        else:
            problems += [f"ports[{i}]: must be an integer 0-65535, got {_got(p)}"
                         for i, p in enumerate(ports) if not (_is_int(p) and 0 <= p <= 65535)]

    if "env" in data:
        env = data["env"]
        if not isinstance(env, dict):
            problems.append(f"env: must be an object of strings, got {_got(env)}")
        else:
            # {"secret": "name"} is Marathon's secret reference; refusing it would refuse valid apps.
            problems += [f"env.{k}: must be a string, got {_got(v)}" for k, v in env.items()
                         if not (isinstance(v, str) or (isinstance(v, dict) and set(v) == {"secret"}))]

    if "constraints" in data:
        constraints = data["constraints"]
        # A flat ["hostname", "UNIQUE"] is the usual slip: one message for it, not one per string.
        if not isinstance(constraints, list) or (constraints and all(isinstance(c, str) for c in constraints)):
            problems.append(f"constraints: must be a list of [field, operator(, value)] lists, "
                            f"e.g. [[\"hostname\", \"UNIQUE\"]], got {_got(constraints)}")
        else:
            problems += [f"constraints[{i}]: must be a list of 2 or 3 strings "
                         f"[field, operator(, value)], got {_got(c)}"
                         for i, c in enumerate(constraints)
                         if not (isinstance(c, list) and 2 <= len(c) <= 3
                                 and all(isinstance(s, str) for s in c))]

    return app_id, problems


def validate_app(data) -> dict:
    """Return a copy of the app with an absolute id, or raise AppDefinitionError listing every
    problem. Only the fields this project relies on are type-checked; other Marathon fields
    pass through, but nowhere may a value be NaN or Infinity, or nested past Marathon's limit.
    """
    _refuse_deep_nesting(data)
    app_id, problems = _app_problems(data)
    _check_finite(data, problems)
    if problems:
        raise AppDefinitionError(problems)
    return {**data, "id": app_id}


def is_group(data) -> bool:
    """A group definition (for /v2/groups) has "apps" or "groups"; an app has neither."""
    return isinstance(data, dict) and ("apps" in data or "groups" in data)


def validate_group(data) -> dict:
    """Return a copy of the group with every id absolute (apps inside it checked as apps), or
    raise AppDefinitionError listing every problem with its place (``apps[1].cpus: ...``)."""
    _refuse_deep_nesting(data)
    problems = []
    group = _group(data, "/", "", problems)
    _check_finite(data, problems)
    if problems:
        raise AppDefinitionError(problems)
    return group


def _group(data, base, where, problems):
    if not isinstance(data, dict):
        problems.append(f"{where or '(top level)'}: must be a JSON object, got "
                        f"{type(data).__name__}")
        return None
    field = f"{where}." if where else ""
    id_problems = []
    group_id = _check_id(data.get("id"), id_problems, base)
    if data.get("id") is None:
        id_problems = [f"id: required (the group's path, e.g. \"/prod\")"]
    problems += [field + p for p in id_problems]
    group = dict(data)
    if group_id is None:
        return None
    group["id"] = group_id
    for key in ("apps", "groups"):
        if key in data and not isinstance(data[key], list):
            problems.append(f"{field}{key}: must be a list, got {_got(data[key])[:80]}")
    apps = []
    for i, app in enumerate(data.get("apps") or [] if isinstance(data.get("apps"), list) else []):
        app_id, app_problems = _app_problems(app, group_id)
        problems += [f"{field}apps[{i}].{p}" for p in app_problems]
        apps.append({**app, "id": app_id} if isinstance(app, dict) else app)
    if "apps" in data:
        group["apps"] = apps
    if isinstance(data.get("groups"), list):
        group["groups"] = [_group(g, group_id, f"{field}groups[{i}]", problems)
                           for i, g in enumerate(data["groups"])]
    return group


def group_app_ids(group: dict) -> list[str]:
    """Every app id in a validated group, its subgroups included."""
    ids = [a["id"] for a in group.get("apps") or []]
    for sub in group.get("groups") or []:
        ids += group_app_ids(sub)
    return ids


def load_definition(path) -> tuple[str, dict]:
    """Read and validate an app or group file -> ("app" | "group", definition).

    Errors name the file, and the line and column for malformed JSON, the field otherwise."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise AppDefinitionError([f"file not found: {path}"], source=path) from None
    except (OSError, UnicodeDecodeError) as e:
        raise AppDefinitionError([f"cannot read {path}: {e}"], source=path) from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise AppDefinitionError([f"{path}:{e.lineno}:{e.colno}: malformed JSON: {e.msg}"],
                                 source=path) from None
    except ValueError:          # the one other: an integer past Python's limit of digits
        raise AppDefinitionError([f"malformed JSON: an integer of more than "
                                  f"{sys.get_int_max_str_digits()} digits"], source=path) from None
    except RecursionError:
        raise AppDefinitionError([TOO_DEEP], source=path) from None
    try:
        if is_group(data):
            return "group", validate_group(data)
        return "app", validate_app(data)
    except AppDefinitionError as e:
        raise AppDefinitionError(e.problems, source=path) from None


# --- the client ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Change:
    """Marathon's answer to a write: the deployment it started."""
    deployment_id: str | None
    version: str | None
    endpoint: str
    created: bool = False       # 201: the write created the app or group


def _redacted(method):
    """`method`'s errors without the client's credentials, even when a server echoed them."""
    @functools.wraps(method)
    def redacted(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except MarathonError as exc:
            text = self.http.redact(str(exc))
            if text == str(exc):
                raise
            raise type(exc)(text) from None
    return redacted


class Marathon:
    """THE Marathon client: every request the tool makes to Marathon goes through here, bounded
    by tasks.http (deadline, size cap, no redirects, strict JSON).

    The endpoints (one per master) are tried in order; the first that answers is tried first
    next time. Any master will do: a standby proxies every request to the leader, as the real
    Marathon does. A master that does not answer, or answers 502/503 (no leader elected yet,
    not ready), is skipped. A write goes to the next master only when the previous one surely
    did not act on it (no connection made, a redirect, or 502/503), so a restart is never sent
    twice. No error carries the credentials, even when a server echoes them back.
    """

    board = progress.BOARD      # where waits show what they wait for

    def __init__(self, endpoints: list[str], *, auth: tuple[str, str] | None = None,
                 ca_bundle: str = "", timeout: float = 10.0, log=print):
        self.endpoints = [e.rstrip("/") for e in endpoints]
        if not self.endpoints:
            raise MarathonError("no Marathon endpoint given (expected e.g. http://192.0.2.1:8080)")
        self.http = http.Client(auth=auth, ca_bundle=ca_bundle)
        self.auth = auth
        self.timeout = timeout
        self.log = log

    @classmethod
    def for_cluster(cls, cluster, **kwargs) -> "Marathon":
        """One endpoint per master of a tasks.model.Cluster: <scheme>://<ip>:<marathon_port>."""
        return cls.for_masters(cluster.masters, **kwargs)

    @classmethod
    def for_masters(cls, masters, **kwargs) -> "Marathon":
        """The same for some of the masters (`fab -H master2 ...`), with the inventory's
        scheme, credentials (marathon_credentials_file) and CA bundle: every call the tool
        makes to Marathon is built here."""
        s = masters[0].settings
        return cls([s.marathon_url(m.ip) for m in masters], auth=s.marathon_auth,
                   ca_bundle=s.ca_bundle, **kwargs)

    def close(self) -> None:
        self.http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- one request, on the first master that answers --------------------------------------

    @_redacted
    def call(self, method: str, path: str, *, body=None,
             params=None) -> tuple[str, http.Response]:
        """Send to the masters in turn; return (endpoint, response) of the first that answered.

        Answers below 500 are returned as they are (the caller knows what 404 or 409 means),
        except redirects: Marathon never redirects, and following one could send credentials
        or a write elsewhere.
        """
        write = method not in ("GET", "HEAD")
        failures = []
        for endpoint in list(self.endpoints):
            try:
                r = self.http.request(method, endpoint + path, json_body=body, params=params,
                                      timeout=self.timeout)
            except http.ConnectError as exc:
                failures.append(_after_url(str(exc), endpoint + path))
            except http.HttpError as exc:
                if write:   # the master may have acted on it: never send it twice
                    raise MarathonError(f"{exc} (not sent to another master: this one may "
                                        f"have acted on it; see fab deployments)") from None
                failures.append(_after_url(str(exc), endpoint + path))
            else:
                if 300 <= r.status < 400:
                    failures.append(f"{endpoint}: HTTP {r.status} redirect to "
                                    f"{r.headers.get('Location', '?')[:200]} (not followed)")
                elif r.status in (502, 503) or (r.status >= 500 and not write):
                    failures.append(f"{endpoint}: HTTP {r.status} {_error_text(r)}")
                elif r.status >= 500:
                    raise MarathonError(f"{method} {path} on {endpoint}: HTTP {r.status} "
                                        f"{_error_text(r)}")
                else:
                    self.endpoints.remove(endpoint)
                    self.endpoints.insert(0, endpoint)
                    return endpoint, r
            self.log(self.http.redact(f"marathon: {method} {path}: skipping {failures[-1]}"))
        raise NoMasterAnswered(f"no Marathon master answered {method} {path}: "
                               + "; ".join(failures))

    def _refused(self, method: str, path: str, endpoint: str, r: http.Response,
                 subject: str = "") -> MarathonError:
        """An answer the caller did not expect, explained on one line (422: one per field)."""
        where = f"{method} {path} on {endpoint}"
        if r.status == 401:
            hint = ("the credentials were refused" if self.auth
                    else "Marathon asks for credentials (HTTP basic auth) and none are set")
            return MarathonError(f"{where}: HTTP 401: {hint}")
        if r.status == 403:
            return MarathonError(f"{where}: HTTP 403: not allowed for these credentials: "
                                 f"{_error_text(r)}")
        if r.status == 409 and _locking_deployments(r):
            return MarathonError(
                f"{subject or path} is locked by deployment {', '.join(_locking_deployments(r))} "
                f"(HTTP 409): wait for it to finish (fab deployments), or rerun with --force to "
                f"override it")
        if r.status == 422:
            return MarathonError(f"Marathon refused {subject or path} (HTTP 422 "
                                 f"{_error_text(r)}):\n  " + "\n  ".join(_field_errors(r)))
        if r.status == 400:
            return MarathonError(f"Marathon refused {subject or path} (HTTP 400): "
                                 f"{_error_text(r)}")
        return MarathonError(f"{where}: HTTP {r.status} {_error_text(r)}")

    @_redacted
    def _get(self, path: str, key: str | None, schema, *, params=None, missing=None):
        """GET path and return body[key] (or the body), checked against `schema` (see
        `checked`).

        `missing(response)` handles a 404; without it a 404 is an error."""
        endpoint, r = self.call("GET", path, params=params)
        if r.status == 404 and missing is not None:
            return missing(r)
        if r.status != 200:
            raise self._refused("GET", path, endpoint, r)
        if key is None:
            return checked(_json(r), schema, f"GET {path} on {endpoint}")
        return checked(_json(r), {key: Required(schema)}, f"GET {path} on {endpoint}")[key]

    # --- reads ------------------------------------------------------------------------------

    def leader(self) -> str | None:
        """GET /v2/leader: the elected leader's "host:port", or None when none is elected."""
        return self._get("/v2/leader", "leader", NAME, missing=lambda r: None)

    def ping(self) -> bool:
        """GET /ping: True when a master answers `pong` (standbys answer too)."""
        endpoint, r = self.call("GET", "/ping")
        if r.status in (401, 403):
            raise self._refused("GET", "/ping", endpoint, r)
        return r.status == 200 and r.text.strip() == "pong"

    def apps(self) -> list[dict]:
        """GET /v2/apps with each app's tasks and last task failure (counts and deployments
        Marathon always embeds)."""
        return self._get("/v2/apps", "apps", [APP],
                         params=[("embed", "apps.tasks"), ("embed", "apps.lastTaskFailure")])

    def app(self, app_id: str) -> dict:
        """GET /v2/apps/{id}: the app with its tasks, counts, deployments and last task failure;
        MarathonError naming the app when it does not exist."""
        return self._get(_app_path(app_id), "app", APP, missing=_unknown("app", app_id))

    def deployments(self) -> list[dict]:
        """GET /v2/deployments: the running deployments (a finished one leaves the list)."""
        return self._get("/v2/deployments", None, [DEPLOYMENT])

    def queue(self) -> list[dict]:
        """GET /v2/queue: the launch queue; delay.timeLeftSeconds > 0 is a launch back-off."""
        return self._get("/v2/queue", "queue", [QUEUE_ENTRY])

    def find_app(self, app_id: str) -> dict | None:
        """GET /v2/apps/{id}, or None when it does not exist (no error)."""
        return self._get(_app_path(app_id), "app", APP, missing=lambda r: None)

    # --- writes: each starts a deployment ---------------------------------------------------

    @_redacted
    def _write(self, method: str, path: str, subject: str, *, body=None, force=False,
               params=(), expect=(200, 201), missing=None) -> tuple[http.Response, Change | None]:
        """Send one write; answers in `expect` come back, a 200 or 201 with its Change; others
        are explained."""
        query = [*params, ("force", "true")] if force else list(params)
        endpoint, r = self.call(method, path, body=body, params=query or None)
        if r.status == 404 and missing is not None:
            missing(r)
        if r.status not in expect:
            raise self._refused(method, path, endpoint, r, subject)
        if r.status not in (200, 201):
            return r, None
        try:
            answer = checked(_json(r), WRITE_ANSWER, f"{method} {path} on {endpoint}")
        except MarathonError as exc:
            raise MarathonError(f"{exc} (HTTP {r.status}: Marathon may have made the change; "
                                f"see fab deployments)") from None
        return r, _change(r, endpoint, answer)

    def submit(self, definition: dict, kind: str, *, update: bool = True,
               force: bool = False) -> Change:
        """Create an app (POST /v2/apps) or group (POST /v2/groups); when it exists and `update`
        is on, replace it (PUT). `force` overrides the deployments that lock it."""
        subject = f"{kind} {definition['id']}"
        create = "/v2/apps" if kind == "app" else "/v2/groups"
        r, change = self._write("POST", create, subject, body=definition, expect=(201, 409))
        if r.status == 201:
            return change
        if not update:
            raise MarathonError(f"{subject} already exists and updating is off (--no-update); "
                                f"run without --no-update to replace its definition")
        # partialUpdate=false: the file is the whole definition; a field left out of it must
        # go back to Marathon's default, not keep its old value (Marathon >= 1.5; 1.4 ignores it).
        path = (_app_path(definition["id"]) if kind == "app"
                else "/v2/groups" + quote(definition["id"], safe="/"))
        _, change = self._write("PUT", path, subject, body=definition, force=force,
                                params=[("partialUpdate", "false")] if kind == "app" else [])
        return change

    def scale(self, app_id: str, instances: int, *, force: bool = False) -> Change:
        """PUT /v2/apps/{id} {"instances": N}: a partial update that only scales."""
        return self._write("PUT", _app_path(app_id), f"app {_absolute(app_id)}",
                           body={"instances": instances}, force=force,
                           missing=_unknown("app", app_id))[1]

    def restart(self, app_id: str, *, force: bool = False) -> Change:
        """POST /v2/apps/{id}/restart: replace every task, following the upgradeStrategy."""
        return self._write("POST", _app_path(app_id) + "/restart", f"app {_absolute(app_id)}",
                           force=force, missing=_unknown("app", app_id))[1]

    def destroy(self, app_id: str) -> Change:
        """DELETE /v2/apps/{id}: kill its tasks and remove it (Marathon forces this one)."""
        return self._write("DELETE", _app_path(app_id), f"app {_absolute(app_id)}",
                           missing=_unknown("app", app_id))[1]

    def cancel_deployment(self, deployment_id: str, *, force: bool = False) -> Change | None:
        """DELETE /v2/deployments/{id}: Marathon answers with a NEW deployment that rolls back;
        with `force` it only stops (202, no rollback) and this returns None."""
        r, change = self._write("DELETE", "/v2/deployments/" + quote(deployment_id, safe=""),
                                f"deployment {deployment_id}", force=force, expect=(200, 202),
                                missing=_unknown("deployment", deployment_id))
        return None if r.status == 202 else change

    # --- waiting ----------------------------------------------------------------------------

    def wait_for(self, what: str, change: Change | None, app_ids: list[str],
                 settled: Callable[[dict], tuple[bool, str]], *, timeout: float,
                 poll: float = POLL_INTERVAL) -> dict:
        """Poll until the change's deployment has left /v2/deployments and
        `settled({app id: app or None})` says done; return those apps.

        Fails at once when the deployment is over but a task failed since the change; at the
        deadline, fails with the deployment's step, its current actions and the apps' last
        task failures. A moment without any master answering (a leader election) is waited out.
        Each request has its own timeout, so a wait ends by `timeout` plus one poll.
        """
        deadline = time.monotonic() + timeout
        deployment_id = change.deployment_id if change else None
        since = change.version if change else None
        running, apps, state = None, {}, "no answer yet"
        with self.board.waiting(what, host="marathon") as wait:
            while True:
                try:
                    running = next((d for d in self.deployments()
                                    if d["id"] == deployment_id), None) \
                        if deployment_id else None
                    apps = {a: self.find_app(a) for a in app_ids}
                    done, state = settled(apps)
                    if running is not None:
                        state = f"{describe_deployment(running)}; {state}"
                    elif done:
                        return apps
                    else:
                        failed = [a for a in apps.values() if _failure_is_new(a, since)]
                        if failed:
                            raise MarathonError(f"{what} failed: {state}; "
                                                + "; ".join(map(last_failure, failed)))
                except NoMasterAnswered as exc:
                    state = f"no master answers ({exc})"
                wait.update(state)
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise MarathonError(_timeout_report(what, timeout, deployment_id, running,
                                                        apps, state))
                time.sleep(min(poll, remaining))


def _timeout_report(what, timeout, deployment_id, running, apps, state) -> str:
    """One line: what did not finish, where its deployment stands, and why tasks failed."""
    if running is not None:
        where = describe_deployment(running)
    elif deployment_id:
        where = f"deployment {deployment_id} is over"
    else:
        where = "no deployment"
    failures = [last_failure(a) for a in apps.values() if a and a.get("lastTaskFailure")]
    return (f"{what} did not finish within {timeout:g} s: {where}; last state: {state}"
            + "".join(f"; {f}" for f in failures) + " (Marathon goes on with it; see fab "
            "deployments, and fab deployment-cancel to roll it back)")


# --- answers -> facts and text -----------------------------------------------------------------

def describe_deployment(d: dict) -> str:
    """"deployment 5ed4 step 2/2: ScaleApplication /web"."""
    return (f"deployment {d.get('id')} step {d.get('currentStep', '?')}/"
            f"{d.get('totalSteps', '?')}: {current_actions(d) or 'no actions'}")


def current_actions(d: dict) -> str:
    return ", ".join(f"{a.get('action', '?')} {a.get('app') or a.get('pod') or ''}".strip()
                     for a in d.get("currentActions", []))


def last_failure(app: dict) -> str:
    f = app.get("lastTaskFailure")
    if not f:
        return f"{app['id']}: no task failure"
    return (f"last task failure of {app['id']}: {f.get('state', '?')} on "
            f"{f.get('host', '?')} at {f.get('timestamp', '?')}: "
            f"{' '.join(f.get('message', '').split()) or '(no message)'}")


def task_counts(app: dict) -> str:
    """"2/3 running, 1 staged" (and healthy counts when the app has health checks)."""
    text = f"{app.get('tasksRunning', 0)}/{app.get('instances', '?')} running"
    if app.get("tasksStaged"):
        text += f", {app['tasksStaged']} staged"
    if app.get("healthChecks"):
        text += f", {app.get('tasksHealthy', 0)} healthy"
    return text


def runs(app: dict | None, instances: int, exclude: frozenset = frozenset()) -> bool:
    """The app runs exactly `instances` tasks, none of `exclude`, all healthy if it checks."""
    if not app:
        return False
    tasks = app.get("tasks", [])
    running = [t for t in tasks if t.get("state") == "TASK_RUNNING"
               and t.get("id") not in exclude]
    healthy = not app.get("healthChecks") or app.get("tasksHealthy", 0) >= instances
    return len(tasks) == len(running) == instances and healthy


def _failure_is_new(app: dict | None, since: str | None) -> bool:
    """True when the app's lastTaskFailure happened after the change (its version timestamp)."""
    failure = (app or {}).get("lastTaskFailure")
    if not failure or not since:
        return False
    if failure.get("version") == since:
        return True
    started, failed = parse_time(since), parse_time(failure.get("timestamp"))
    return bool(started and failed and failed >= started)


def parse_time(value) -> datetime | None:
    """Marathon's timestamps ("2024-05-01T10:00:00.000Z") as aware datetimes."""
    try:
        t = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _change(r: http.Response, endpoint: str, answer: dict) -> Change:
    """Marathon-Deployment-Id header, else the answer's deploymentId or deployments[0].id."""
    deployments = answer.get("deployments") or [{}]
    deployment_id = (r.headers.get("Marathon-Deployment-Id") or answer.get("deploymentId")
                     or deployments[0].get("id"))
    return Change(deployment_id=deployment_id, version=answer.get("version"),
                  endpoint=endpoint, created=r.status == 201)


def _locking_deployments(r: http.Response) -> list[str]:
    """The ids of a 409 "locked by one or more deployments" answer; [] for other 409s."""
    try:
        body = checked(_json(r), {"deployments": [{"id": Required(NAME)}]}, "409")
    except MarathonError:
        return []
    return [d["id"] for d in body.get("deployments") or []]


def _after_url(message: str, url: str) -> str:
    """"GET http://h:8080/v2/x: cannot connect: ..." -> "http://h:8080: cannot connect: ..."."""
    base = url.split("/v2/", 1)[0]
    return base + message.split(url, 1)[-1] if url in message else message


def _error_text(r: http.Response) -> str:
    """Marathon's error text: the body's "message", else the body itself, on one line."""
    try:
        message = checked(_json(r), {"message": Required(TEXT)}, "")["message"]
    except MarathonError:
        message = r.text
    return " ".join(message.split())[:300]


def _field_errors(r: http.Response) -> list[str]:
    """422 details [{path, errors}] -> ["/mem: got 16.0, expected 32.0 or more", ...]."""
    try:
        body = checked(_json(r), {"details": Required([{"path": TEXT, "errors": [TEXT]}])},
                       "422")
    except MarathonError:
        return [" ".join(r.text.split())[:300]]
    return [f"{d.get('path', '?')}: {'; '.join(d.get('errors') or [])}"[:300]
            for d in body["details"]] or [_got(body)[:300]]


def _json(r: http.Response):
    try:
        return r.json()
    except http.HttpError as exc:
        raise MarathonError(str(exc)) from None


# --- answers: the fields the tool reads, and their types ------------------------------------
#
# Every answer is checked where it arrives against the fields the tool reads, so that a wrong
# type anywhere is one MarathonError naming the field ("GET /v2/apps on http://...:
# apps[0].tasks: expected a JSON list, got 5"), and no reader further on meets a string where a
# count belongs, a task that is not an object, or an escape sequence in a name. null stands for
# absent, as Marathon writes it ("cmd": null), and is dropped; fields not listed pass as they are.

@dataclass(frozen=True)
class Kind:
    name: str
    test: Callable[[object], bool]


@dataclass(frozen=True)
class Required:
    schema: object


# Ids, hosts, states, versions: printable, no spaces, of a sane length.
NAME = Kind("a name (1-512 printable characters, no spaces)",
            lambda v: isinstance(v, str) and 0 < len(v) <= 512 and v.isprintable()
            and " " not in v)
TEXT = Kind("a string", lambda v: isinstance(v, str))
COUNT = Kind("a whole number from 0 to 2^31-1", lambda v: _is_int(v) and 0 <= v < 2 ** 31)
NUMBER = Kind("a number", _is_number)
SECONDS = Kind("a number of seconds from 0 to 2^31", lambda v: _is_number(v) and 0 <= v <= 2 ** 31)
FLAG = Kind("true or false", lambda v: isinstance(v, bool))
OBJECT = Kind("a JSON object", lambda v: isinstance(v, dict))

TASK = {"id": NAME, "host": NAME, "state": NAME, "startedAt": NAME, "version": NAME}
APP = {"id": Required(NAME), "version": NAME, "instances": COUNT,
       "tasksRunning": COUNT, "tasksStaged": COUNT, "tasksHealthy": COUNT, "tasksUnhealthy": COUNT,
       "cmd": TEXT, "args": [TEXT], "container": {"type": NAME, "docker": {"image": TEXT}},
       "cpus": NUMBER, "mem": NUMBER, "disk": NUMBER, "portDefinitions": [{"port": COUNT}],
       "constraints": [[TEXT]], "healthChecks": [OBJECT], "deployments": [{"id": NAME}],
       "tasks": [TASK], "lastTaskFailure": {"state": NAME, "host": NAME, "timestamp": NAME,
                                            "version": NAME, "message": TEXT}}
DEPLOYMENT = {"id": Required(NAME), "version": NAME, "affectedApps": [NAME],
              "currentStep": COUNT, "totalSteps": COUNT,
              "currentActions": [{"action": NAME, "app": NAME, "pod": NAME}]}
QUEUE_ENTRY = {"app": {"id": NAME}, "count": COUNT,
               "delay": {"timeLeftSeconds": SECONDS, "overdue": FLAG}}
WRITE_ANSWER = {"deploymentId": NAME, "version": NAME, "deployments": [{"id": NAME}]}


def checked(value, schema, what: str, field: str = ""):
    """`value` if it has the types `schema` gives (its null fields dropped), else MarathonError.

    A schema is a Kind, a dict of field -> schema (a JSON object; Required(schema) for a field
    that must be there), or [schema] (a JSON list of such items)."""
    def wrong(expected: str):
        return MarathonError(f"{what}: {field + ': ' if field else ''}expected {expected}, got "
                             f"{_got(value)[:80]}")

    if isinstance(schema, dict):
        if not isinstance(value, dict):
            raise wrong("a JSON object")
        value = {k: v for k, v in value.items() if v is not None or k not in schema}
        for key, sub in schema.items():
            where = f"{field}.{key}" if field else key
            if isinstance(sub, Required):
                if key not in value:
                    raise MarathonError(f"{what}: {where}: missing")
                sub = sub.schema
            if key in value:
                value[key] = checked(value[key], sub, what, where)
        return value
    if isinstance(schema, list):
        if not isinstance(value, list):
            raise wrong("a JSON list")
        return [checked(item, schema[0], what, f"{field}[{i}]") for i, item in enumerate(value)]
    if not schema.test(value):
        raise wrong(schema.name)
    return value


def _unknown(kind: str, ident: str):
    """A 404 handler: MarathonError naming the app (or deployment) and Marathon's words."""
    name = _absolute(ident) if kind == "app" else ident

    def missing(r):
        raise MarathonError(f"{kind} {name} does not exist ({_error_text(r)})")
    return missing


def _absolute(app_id: str) -> str:
    return "/" + app_id.strip("/")


def _app_path(app_id: str) -> str:
    return "/v2/apps" + quote(_absolute(app_id), safe="/")
