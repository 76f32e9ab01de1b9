"""What the app tasks do (`fab deploy-app`, `app-list`, `app-show`, `app-scale`, `app-restart`,
`app-destroy`, `deployments`, `deployment-cancel`), on one tasks.marathon client.

Each function checks what it can before it changes anything (an unknown app is named before
any write), makes one write, waits until Marathon has finished it (saying what it waits for
and for how long so far), and returns the lines to print. Every failure is a MarathonError::

    with marathon.Marathon.for_cluster(cluster) as m:
        print(apps.scale(m, "/web", 3, force=False, timeout=120))
"""

from __future__ import annotations

from datetime import datetime, timezone

from tasks import marathon
from tasks.marathon import Marathon, MarathonError, runs, task_counts


def deploy(m: Marathon, kind: str, definition: dict, *, update: bool, force: bool,
           timeout: float) -> str:
    """Create (or replace) an app or a group and wait until every app in it runs."""
    change = m.submit(definition, kind, update=update, force=force)
    subject = f"{kind} {definition['id']}"
    app_ids = [definition["id"]] if kind == "app" else marathon.group_app_ids(definition)
    m.log(f"marathon: {'created' if change.created else 'updated'} {subject} via "
          f"{change.endpoint}, deployment {change.deployment_id or '-'}")
    result = m.wait_for(f"deployment of {subject}", change, app_ids, _all_run, timeout=timeout)
    lines = [f"{'created' if change.created else 'updated'} {subject} (version "
             f"{change.version or '?'}, deployment {change.deployment_id or '-'}) "
             f"via {change.endpoint}"]
    for app in result.values():
        lines += [f"  {app['id']}: {task_counts(app)}"] + _task_lines(app, "    ")
    return "\n".join(lines)


def _all_run(apps: dict) -> tuple[bool, str]:
    done = all(runs(app, app.get("instances", 0)) for app in apps.values())
    return done, "; ".join(f"{app_id}: {task_counts(app) if app else 'not there yet'}"
                           for app_id, app in apps.items())


def list_apps(m: Marathon) -> str:
    """Every app: instances, running, healthy, staged, and the deployments under way."""
    rows = [(a["id"], a.get("instances", "?"), a.get("tasksRunning", 0),
             a.get("tasksHealthy", 0) if a.get("healthChecks") else "-",
             a.get("tasksStaged", 0),
             ", ".join(d.get("id", "?") for d in a.get("deployments", [])) or "-")
            for a in sorted(m.apps(), key=lambda a: a["id"])]
    if not rows:
        return "no apps"
    return _table(("ID", "INSTANCES", "RUNNING", "HEALTHY", "STAGED", "DEPLOYMENT"), rows)


def show_app(m: Marathon, app_id: str) -> str:
    """One app: its definition's key fields, its tasks, last failure, and launch delay."""
    app = m.app(app_id)
    entry = next((q for q in m.queue() if q.get("app", {}).get("id") == app["id"]), None)
    container = app.get("container", {})
    image = container.get("docker", {}).get("image")
    command = (f"cmd: {app['cmd']}" if app.get("cmd") else
               f"args: {' '.join(app['args'])}" if app.get("args") else
               f"container: {image or container.get('type', '?')}")
    ports = [d["port"] for d in app.get("portDefinitions", []) if "port" in d]
    lines = [f"{app['id']}  version {app.get('version', '?')}",
             f"  {command}",
             f"  instances {app.get('instances', '?')}, cpus {app.get('cpus', '?')}, "
             f"mem {app.get('mem', '?')} MB, disk {app.get('disk', '?')} MB, "
             f"ports {', '.join(map(str, ports)) or '-'}"]
    if app.get("constraints"):
        lines.append("  constraints: " + ", ".join(":".join(c) for c in app["constraints"]))
    if app.get("healthChecks"):
        lines.append(f"  health checks: {len(app['healthChecks'])}")
    lines.append("  deployments: " + (", ".join(d.get("id", "?") for d in app.get(
        "deployments", [])) or "none"))
    lines.append(f"  tasks: {task_counts(app)}")
    lines += _task_lines(app, "    ")
    lines.append("  " + marathon.last_failure(app))
    lines.append("  launch queue: " + _queue_text(entry))
    return "\n".join(lines)


def _queue_text(entry: dict | None) -> str:
    if entry is None:
        return "nothing waiting to launch"
    delay = entry.get("delay", {})
    left = delay.get("timeLeftSeconds", 0)
    text = f"{entry.get('count', '?')} waiting to launch"
    if left > 0:
        text += f", launch delayed {left:g} s more (back-off after failures)"
    elif delay.get("overdue"):
        text += ", no launch delay: waiting for an agent with room for it"
    return text


def scale(m: Marathon, app_id: str, instances: int, *, force: bool, timeout: float) -> str:
    """PUT {"instances": N}, then wait until exactly N tasks run."""
    if instances < 0:
        raise MarathonError(f"--instances must be 0 or more, got {instances}")
    before = m.app(app_id)
    change = m.scale(app_id, instances, force=force)
    what = f"scale of {before['id']} from {before.get('instances')} to {instances}"
    result = m.wait_for(what, change, [before["id"]],
                        lambda apps: (runs(apps[before["id"]], instances),
                                      _state(apps[before["id"]])), timeout=timeout)
    app = result[before["id"]]
    return "\n".join([f"scaled {app['id']} from {before.get('instances')} to {instances} "
                      f"instances (deployment {change.deployment_id or '-'}): "
                      f"{task_counts(app)}"] + _task_lines(app, "  "))


def restart(m: Marathon, app_id: str, *, force: bool, timeout: float) -> str:
    """POST restart, then wait until new tasks have replaced every old one."""
    before = m.app(app_id)
    old = frozenset(t.get("id") for t in before.get("tasks", []))
    change = m.restart(app_id, force=force)

    def settled(apps):
        app = apps[before["id"]]
        if not app:
            return False, "the app is gone"
        left = sum(1 for t in app.get("tasks", []) if t.get("id") in old)
        return (runs(app, app.get("instances", 0), exclude=old),
                f"{task_counts(app)}, {left} of the {len(old)} old tasks left")

    result = m.wait_for(f"restart of {before['id']}", change, [before["id"]], settled,
                        timeout=timeout)
    app = result[before["id"]]
    return "\n".join([f"restarted {app['id']} (deployment {change.deployment_id or '-'}): "
                      f"{len(old)} old tasks replaced, {task_counts(app)}"]
                     + _task_lines(app, "  "))


def destroy(m: Marathon, app_id: str, *, timeout: float) -> str:
    """DELETE the app, then wait until Marathon no longer knows it."""
    app_id = "/" + app_id.strip("/")
    change = m.destroy(app_id)
    m.wait_for(f"removal of {app_id}", change, [app_id],
               lambda apps: (apps[app_id] is None,
                             f"still there: {_state(apps[app_id])}"), timeout=timeout)
    return f"destroyed {app_id} (deployment {change.deployment_id or '-'}): its tasks are killed"


def list_deployments(m: Marathon, now: datetime | None = None) -> str:
    """Running deployments: affected apps, step i/n, current actions, age."""
    now = now or datetime.now(timezone.utc)
    rows = [(d["id"], ", ".join(d.get("affectedApps", [])) or "-",
             f"{d.get('currentStep', '?')}/{d.get('totalSteps', '?')}",
             marathon.current_actions(d) or "-", _age(d.get("version"), now))
            for d in sorted(m.deployments(), key=lambda d: d.get("version", ""))]
    if not rows:
        return "no deployment running"
    return _table(("ID", "APPS", "STEP", "CURRENT ACTIONS", "AGE"), rows)


def cancel(m: Marathon, deployment_id: str, *, force: bool, timeout: float) -> str:
    """Without force: Marathon rolls back with a new deployment, waited for. With force: it
    only stops, leaving the apps as they are at that moment."""
    running = next((d for d in m.deployments() if d["id"] == deployment_id), None)
    if running is None:
        ids = ", ".join(d["id"] for d in m.deployments()) or "none"
        raise MarathonError(f"deployment {deployment_id} is not running (finished, or never "
                            f"existed); running now: {ids}")
    affected = running.get("affectedApps", [])
    rollback = m.cancel_deployment(deployment_id, force=force)
    if rollback is None:
        states = "; ".join(f"{a}: {_state(m.find_app(a))}" for a in affected)
        return (f"stopped deployment {deployment_id} WITHOUT rollback (--force): its apps "
                f"stay as they are now, possibly part-way: {states or 'no apps'}")
    result = m.wait_for(f"rollback of deployment {deployment_id}", rollback, affected,
                        lambda apps: (True, "; ".join(f"{a}: {_state(app)}"
                                                      for a, app in apps.items())),
                        timeout=timeout)
    states = "; ".join(f"{a}: {_state(app)}" for a, app in result.items())
    return (f"cancelled deployment {deployment_id}; Marathon rolled it back with deployment "
            f"{rollback.deployment_id or '-'}, now finished: {states or 'no apps'}")


def _state(app: dict | None) -> str:
    return task_counts(app) if app else "removed"


def _task_lines(app: dict, indent: str) -> list[str]:
    return [f"{indent}{t.get('id')}  {t.get('host') or '?'}  {t.get('state') or '?'}  "
            f"started {t.get('startedAt') or '-'}"
            for t in app.get("tasks", [])]


def _age(version, now: datetime) -> str:
    started = marathon.parse_time(version)
    if started is None:
        return "?"
    seconds = max(0, int((now - started).total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"


def _table(header: tuple, rows: list[tuple]) -> str:
    cells = [tuple(map(str, header))] + [tuple(map(str, r)) for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
                     for row in cells)
