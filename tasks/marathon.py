"""Marathon apps: validate a definition, deploy it through the REST v2 API, wait until it runs.

Validation is pure, so a bad ``hello.json`` is refused before any master is contacted, with every
problem named by field.  The client takes one base URL per master and uses whichever answers
(a non-leader proxies to the leader), then waits for the deployment to leave ``/v2/deployments``
and for the app to have its instances running::

    app = load_app_file("hello.json")
    result = deploy(app, ["http://192.0.2.1:8080", "http://192.0.2.2:8080"], timeout=120)
    print(format_result(result))
"""
from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote

import requests

from tasks import http

__all__ = [
    "AppDefinitionError", "MarathonError", "DeployResult",
    "validate_app", "load_app_file", "deploy", "format_result", "app_status", "leader",
]

# Marathon's own segment rule (app.raml), minus "." and "..": relative ids are not worth the risk.
SEGMENT_RE = re.compile(r"^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])$")
RESERVED_LAST_SEGMENTS = ("restart", "tasks", "versions")
CONNECT_TIMEOUT = 3.05
READ_TIMEOUT = 10.0


class AppDefinitionError(ValueError):
    """The app definition is unusable; ``problems`` lists every one, each starting with its field."""

    def __init__(self, problems, source=None):
        self.problems = list(problems)
        self.source = source
        head = f"{source}: " if source else ""
        super().__init__(head + "invalid app definition:\n  " + "\n  ".join(self.problems))


class MarathonError(RuntimeError):
    """Marathon refused the app, no master answered, or the deployment failed or timed out."""


class _NoMasterAnswered(MarathonError):
    """Every endpoint failed; while waiting this may be a leader election, so it is retried."""


@dataclass
class DeployResult:
    app_id: str
    created: bool          # False: an existing app was updated
    deployment_id: str | None
    version: str | None
    endpoint: str          # the master that accepted the app
    instances: int
    tasks: list = field(default_factory=list)   # [{id, host, state, startedAt}]


# --- validation ------------------------------------------------------------------------------

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


def _check_id(app_id, problems):
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
    return "/" + "/".join(segments)


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


def validate_app(data) -> dict:
    """Return a copy of the app with an absolute id, or raise AppDefinitionError listing every problem.

    Only the fields this project relies on are type-checked; other Marathon fields pass through.
    """
    if not isinstance(data, dict):
        raise AppDefinitionError([f"(top level): must be a JSON object, got {type(data).__name__}"])
    problems = []
    app_id = _check_id(data.get("id"), problems)
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

    if problems:
        raise AppDefinitionError(problems)
    return {**data, "id": app_id}


def load_app_file(path) -> dict:
    """Read and validate an app definition file; errors name the file (and line:col for bad JSON)."""
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
    try:
        return validate_app(data)
    except AppDefinitionError as e:
        raise AppDefinitionError(e.problems, source=path) from None


# --- the client ------------------------------------------------------------------------------

class NoMasterAnswered(MarathonError):
    """No master gave an answer (all down, or all without a leader: 502/503). During a wait this
    is usually a leader election, so waits retry it until their deadline."""


class Marathon:
    """THE Marathon client: every request the tool makes to Marathon goes through here, bounded
    by tasks.http (deadline, size cap, no redirects, strict JSON).

    The endpoints (one per master) are tried in order; the first that answers is tried first
    next time. Any master will do: a standby proxies every request to the leader, as the real
    Marathon does. A master that does not answer, or answers 502/503 (no leader elected yet,
    not ready), is skipped. A write goes to the next master only when the previous one surely
    did not act on it (no connection made, or 502/503), so a restart is never sent twice.
    """

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
        """One endpoint per master of a tasks.inventory.Cluster: http://<ip>:<marathon_port>."""
        return cls([f"http://{m.ip}:{m.settings.marathon_port}" for m in cluster.masters],
                   **kwargs)

    def close(self) -> None:
        self.http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- one request, on the first master that answers --------------------------------------

    def call(self, method: str, path: str, *, body=None, params=None,
             deadline: float | None = None) -> tuple[str, http.Response]:
        """Send to the masters in turn; return (endpoint, response) of the first that answered.

        Answers below 500 are returned as they are (the caller knows what 404 or 409 means);
        3xx included, since Marathon never redirects and following one could send credentials
        or a write elsewhere.
        """
        write = method not in ("GET", "HEAD")
        failures = []
        for endpoint in list(self.endpoints):
            try:
                r = self.http.request(method, endpoint + path, json_body=body, params=params,
                                      timeout=self.timeout, deadline=deadline)
            except http.ConnectError as exc:
                failures.append(_after_url(str(exc), endpoint + path))
            except http.HttpError as exc:
                if write:   # the master may have acted on it: never send it twice
                    raise MarathonError(str(exc)) from None
                failures.append(_after_url(str(exc), endpoint + path))
            else:
                if 300 <= r.status < 400:
                    failures.append(f"{endpoint}: HTTP {r.status} redirect to "
                                    f"{r.headers.get('Location', '?')} (not followed)")
                elif r.status in (502, 503) or (r.status >= 500 and not write):
                    failures.append(f"{endpoint}: HTTP {r.status} {_error_text(r)}")
                elif r.status >= 500:
                    raise MarathonError(f"{method} {path} on {endpoint}: HTTP {r.status} "
                                        f"{_error_text(r)}")
                else:
                    self.endpoints.remove(endpoint)
                    self.endpoints.insert(0, endpoint)
                    return endpoint, r
            self.log(f"marathon: {method} {path}: skipping {failures[-1]}")
        raise NoMasterAnswered(f"no Marathon master answered {method} {path}: "
                               + "; ".join(failures))

    def _refused(self, method: str, path: str, endpoint: str, r: http.Response) -> MarathonError:
        """An answer the caller did not expect, explained on one line."""
        where = f"{method} {path} on {endpoint}"
        if r.status == 401:
            hint = ("the credentials were refused" if self.auth
                    else "Marathon asks for credentials (HTTP basic auth) and none are set")
            return MarathonError(f"{where}: HTTP 401: {hint}")
        if r.status == 403:
            return MarathonError(f"{where}: HTTP 403: not allowed for these credentials: "
                                 f"{_error_text(r)}")
        if r.status == 422:
            return MarathonError(f"{where}: HTTP 422 {_error_text(r)}:\n  "
                                 + "\n  ".join(_field_errors(r)))
        return MarathonError(f"{where}: HTTP {r.status} {_error_text(r)}")

    def _get(self, path: str, key: str | None, kind: type, *, params=None, deadline=None,
             missing=None):
        """GET path and return body[key] (or the body) checked to be of `kind`.

        `missing(endpoint, response)` handles a 404; without it a 404 is an error."""
        endpoint, r = self.call("GET", path, params=params, deadline=deadline)
        if r.status == 404 and missing is not None:
            return missing(endpoint, r)
        if r.status != 200:
            raise self._refused("GET", path, endpoint, r)
        try:
            value = r.json()
            if key is not None:
                value = _typed(value, dict, f"GET {path} on {endpoint}").get(key)
            return _typed(value, kind, f"GET {path} on {endpoint}" + (f": {key}" if key else ""))
        except http.HttpError as exc:
            raise MarathonError(str(exc)) from None

    # --- reads ------------------------------------------------------------------------------

    def leader(self) -> str | None:
        """GET /v2/leader: the elected leader's "host:port", or None when none is elected."""
        return self._get("/v2/leader", "leader", str, missing=lambda endpoint, r: None)

    def apps(self) -> list[dict]:
        """GET /v2/apps with each app's tasks and last task failure (counts and deployments
        Marathon always embeds)."""
        apps = self._get("/v2/apps", "apps", list,
                         params=[("embed", "apps.tasks"), ("embed", "apps.lastTaskFailure")])
        return _dicts(apps, "GET /v2/apps: apps")

    def app(self, app_id: str) -> dict:
        """GET /v2/apps/{id}: the app with its tasks, counts, deployments and last task failure."""
        return self._get(_app_path(app_id), "app", dict, missing=_unknown_app(app_id))

    def deployments(self) -> list[dict]:
        """GET /v2/deployments: the running deployments (a finished one leaves the list)."""
        return _dicts(self._get("/v2/deployments", None, list), "GET /v2/deployments")

    def queue(self) -> list[dict]:
        """GET /v2/queue: the launch queue; delay.timeLeftSeconds > 0 is a launch back-off."""
        return _dicts(self._get("/v2/queue", "queue", list), "GET /v2/queue: queue")


def _after_url(message: str, url: str) -> str:
    """"GET http://h:8080/v2/x: cannot connect: ..." -> "http://h:8080: cannot connect: ..."."""
    base = url.split("/v2/", 1)[0]
    return base + message.split(url, 1)[-1] if url in message else message


def _error_text(r: http.Response) -> str:
    """Marathon's error text: the body's "message", else the body itself, on one line."""
    try:
        body = http.parse_json(r.body, "") if r.body else None
    except http.HttpError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return " ".join(body["message"].split())
    return " ".join(r.text.split())[:300]


def _field_errors(r: http.Response) -> list[str]:
    """422 details [{path, errors}] -> ["/mem: got 16.0, expected 32.0 or more", ...]."""
    try:
        body = r.json()
    except http.HttpError:
        return [r.text[:300]]
    details = body.get("details") if isinstance(body, dict) else None
    lines = [f"{d.get('path', '?')}: {'; '.join(map(str, d.get('errors') or []))}"
             for d in details or [] if isinstance(d, dict)]
    return lines or [_got(body)[:300]]


def _typed(value, kind: type, what: str):
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise MarathonError(f"{what}: expected {_KIND_NAMES.get(kind, kind.__name__)}, got "
                            f"{_got(value)[:80]}")
    return value


_KIND_NAMES = {dict: "a JSON object", list: "a JSON list", str: "a string", int: "an integer"}


def _dicts(items: list, what: str) -> list[dict]:
    for i, item in enumerate(items):
        _typed(item, dict, f"{what}[{i}]")
    return items


def _unknown_app(app_id: str):
    def missing(endpoint, r):
        raise MarathonError(f"app {_absolute(app_id)} does not exist ({_error_text(r)})")
    return missing


def _absolute(app_id: str) -> str:
    return "/" + app_id.strip("/")


# --- HTTP ------------------------------------------------------------------------------------

def _body(response):
    try:
        return response.json()
    except ValueError:
        return response.text


def _message(body):
    if isinstance(body, dict) and "message" in body:
        return str(body["message"])
    return _got(body)[:500]


class _Masters:
    """The Marathon masters, tried in order; the last one that answered is tried first next time."""

    def __init__(self, session, endpoints, log):
        self.session, self.log = session, log
        self.endpoints = [e.rstrip("/") for e in endpoints]
        if not self.endpoints:
            raise MarathonError("no Marathon endpoint given (expected e.g. http://192.0.2.1:8080)")

    def call(self, method, path, *, json_body=None, params=None, deadline=None):
        """Return (endpoint, response) from the first master that answers without a 5xx."""
        read_timeout = READ_TIMEOUT
        if deadline is not None:
            read_timeout = max(0.1, min(READ_TIMEOUT, deadline - time.monotonic()))
        failures = []
        for endpoint in list(self.endpoints):
            try:
                response = self.session.request(method, endpoint + path, json=json_body, params=params,
                                                timeout=(CONNECT_TIMEOUT, read_timeout))
            except requests.RequestException as e:
                error = f"{type(e).__name__}: {e}"
            else:
                # 5xx is a master without a leader (502) or not ready (503): another may do better.
                if response.status_code < 500:
                    self.endpoints.remove(endpoint)
                    self.endpoints.insert(0, endpoint)
                    return endpoint, response
                error = f"HTTP {response.status_code} {_message(_body(response))}"
            failures.append(f"{endpoint}: {error}")
            self.log(f"marathon: {method} {path}: skipping {endpoint} ({error})")
        raise _NoMasterAnswered(f"no Marathon master answered {method} {path}:\n  " + "\n  ".join(failures))


def _app_path(app_id):
    return "/v2/apps" + quote("/" + app_id.lstrip("/"), safe="/")


def _deployment_id(response, body):
    header = response.headers.get("Marathon-Deployment-Id")
    if header:
        return header
    if isinstance(body, dict):
        if body.get("deploymentId"):
            return body["deploymentId"]
        deployments = body.get("deployments") or []
        if deployments and isinstance(deployments[0], dict):
            return deployments[0].get("id")
    return None


def _submit(masters, app, update, force, deadline):
    """POST (or PUT on 409); return (endpoint, created, deployment_id, version)."""
    app_id = app["id"]
    endpoint, r = masters.call("POST", "/v2/apps", json_body=app, deadline=deadline)
    body = _body(r)
    if r.status_code == 409:
        if not update:
            raise MarathonError(f"app {app_id} already exists and updating is off (--no-update); "
                                f"run without --no-update to replace its definition")
        endpoint, r = masters.call("PUT", _app_path(app_id), json_body=app,
                                   params={"force": "true"} if force else None, deadline=deadline)
        body = _body(r)
        if r.status_code == 409:
            ids = [d.get("id") for d in (body.get("deployments") or []) if isinstance(d, dict)] \
                if isinstance(body, dict) else []
            raise MarathonError(f"app {app_id} is locked by deployment(s) {', '.join(map(str, ids)) or '?'} "
                                f"({_message(body)}); wait for them to finish, or rerun with --force "
                                f"(force=True) to override them")
        method = "PUT"
    else:
        method = "POST"
    if r.status_code in (200, 201):
        version = body.get("version") if isinstance(body, dict) else None
        return endpoint, r.status_code == 201, _deployment_id(r, body), version
    if r.status_code == 422:
        details = body.get("details") if isinstance(body, dict) else None
        lines = [f"{d.get('path', '?')}: {'; '.join(map(str, d.get('errors') or []))}"
                 for d in details or [] if isinstance(d, dict)]
        raise MarathonError(f"Marathon refused app {app_id} (422 {_message(body)}):\n  "
                            + "\n  ".join(lines or [_got(body)[:500]]))
    if r.status_code == 400:
        raise MarathonError(f"Marathon refused app {app_id} (400 bad request): {_message(body)}")
    raise MarathonError(f"unexpected answer to {method} {r.request.path_url} from {endpoint}: "
                        f"HTTP {r.status_code} {_got(body)[:500]}")


def _parse_time(value):
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None


def _failure_is_new(failure, version):
    """True when lastTaskFailure happened after our deployment started (its version timestamp)."""
    if not isinstance(failure, dict):
        return False
    if version and failure.get("version") == version:
        return True
    started, failed = _parse_time(version), _parse_time(failure.get("timestamp"))
    return bool(started and failed and failed >= started)


def _describe_app(app):
    state = f"{app.get('tasksRunning', 0)}/{app.get('instances', '?')} tasks running"
    if app.get("tasksStaged"):
        state += f", {app['tasksStaged']} staged"
    failure = app.get("lastTaskFailure")
    if isinstance(failure, dict):
        state += (f"; last task failure {failure.get('state', '')} at {failure.get('timestamp', '?')} "
                  f"on {failure.get('host', '?')}: {failure.get('message', '')}")
    return state


def _wait(masters, app_id, deployment_id, version, timeout, poll_interval, deadline, log):
    """Poll until the deployment left /v2/deployments and the app runs its instances; return the app."""
    last_state = logged_state = "no answer yet"
    while True:
        try:
            listed = None
            if deployment_id:
                _, r = masters.call("GET", "/v2/deployments", deadline=deadline)
                deployments = _body(r) if r.status_code == 200 else None
                if not isinstance(deployments, list):
                    raise MarathonError(f"GET /v2/deployments: HTTP {r.status_code} {_got(_body(r))[:300]}")
                listed = next((d for d in deployments if isinstance(d, dict)
                               and d.get("id") == deployment_id), None)
            if listed is not None:
                actions = ", ".join(f"{a.get('action')} {a.get('app')}" for a in listed.get("currentActions") or []
                                    if isinstance(a, dict))
                last_state = (f"deployment still running, step {listed.get('currentStep', '?')}/"
                              f"{listed.get('totalSteps', '?')} {actions}").rstrip()
            else:
                app = _get_app(masters, app_id, deadline)
                if app.get("tasksRunning", 0) >= app.get("instances", 1):
                    return app
                last_state = "deployment finished; " + _describe_app(app)
                if _failure_is_new(app.get("lastTaskFailure"), version):
                    raise MarathonError(f"deployment {deployment_id or '(none)'} of {app_id} failed: "
                                        + _describe_app(app))
        except _NoMasterAnswered as e:
            # A leader election makes every master answer 502 for a moment: keep polling.
            last_state = str(e)
        if last_state != logged_state:
            log(f"marathon: {app_id}: {last_state}")
            logged_state = last_state
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise MarathonError(f"deployment {deployment_id or '(none)'} of {app_id} did not finish within "
                                f"{timeout:g} s; last state: {last_state}")
        time.sleep(min(poll_interval, remaining))


def deploy(app: dict, endpoints: list[str], *, update: bool = True, force: bool = False,
           timeout: float = 300, poll_interval: float = 1.0, log=print) -> DeployResult:
    """Create (or, with ``update``, replace) the app and wait until its tasks run.

    ``force`` overrides deployments that lock an existing app (``PUT ...?force=true``).
    """
    app = validate_app(app)
    deadline = time.monotonic() + timeout
    with requests.Session() as session:
        masters = _Masters(session, endpoints, log)
        endpoint, created, deployment_id, version = _submit(masters, app, update, force, deadline)
        log(f"marathon: {'created' if created else 'updated'} {app['id']} via {endpoint}, "
            f"deployment {deployment_id or '(none)'}; waiting up to {timeout:g} s")
        status = _wait(masters, app["id"], deployment_id, version, timeout, poll_interval, deadline, log)
    tasks = [{k: t.get(k) for k in ("id", "host", "state", "startedAt")}
             for t in status.get("tasks") or [] if isinstance(t, dict)]
    return DeployResult(app_id=app["id"], created=created, deployment_id=deployment_id,
                        version=version or status.get("version"), endpoint=endpoint,
                        instances=status.get("instances", len(tasks)), tasks=tasks)


def format_result(result: DeployResult) -> str:
    """A few lines for the CLI: what happened, through which master, and where the tasks run."""
    lines = [f"{'created' if result.created else 'updated'} {result.app_id} "
             f"(version {result.version or '?'}, deployment {result.deployment_id or '-'}) "
             f"via {result.endpoint}",
             f"  {len(result.tasks)}/{result.instances} tasks"]
    lines += [f"  {t.get('id')}  {t.get('host') or '?'}  {t.get('state') or '?'}  "
              f"started {t.get('startedAt') or '-'}" for t in result.tasks]
    return "\n".join(lines)


def app_status(app_id: str, endpoints, *, log=print) -> dict:
    """GET /v2/apps/{id} → the ``app`` object; MarathonError if no master answers or it does not exist."""
    with requests.Session() as session:
        return _get_app(_Masters(session, endpoints, log), app_id)


def _get_app(masters, app_id, deadline=None):
    endpoint, r = masters.call("GET", _app_path(app_id), deadline=deadline)
    body = _body(r)
    if r.status_code == 404:
        raise MarathonError(f"app /{app_id.lstrip('/')} does not exist ({endpoint}: {_message(body)})")
    if r.status_code != 200 or not isinstance(body, dict) or not isinstance(body.get("app"), dict):
        raise MarathonError(f"GET {_app_path(app_id)} on {endpoint}: HTTP {r.status_code} {_got(body)[:500]}")
    return body["app"]


def leader(endpoints: list[str], *, log=print) -> str:
    """GET /v2/leader → "host:port" of the elected Marathon; MarathonError when none is elected."""
    with requests.Session() as session:
        endpoint, r = _Masters(session, endpoints, log).call("GET", "/v2/leader")
    body = _body(r)
    if r.status_code == 404:
        raise MarathonError(f"no Marathon leader is elected ({endpoint}: {_message(body)})")
    if r.status_code != 200 or not isinstance(body, dict) or not body.get("leader"):
        raise MarathonError(f"GET /v2/leader on {endpoint}: HTTP {r.status_code} {_got(body)[:500]}")
    return body["leader"]
