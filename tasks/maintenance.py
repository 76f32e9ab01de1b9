"""`fab -H slave2 drain-agent` and `fab -H slave2 agent-up`: take an agent out of service and
back with Mesos' maintenance primitives, asked of the leading master from this machine.

    drain: the machine (the hostname and IP its agent announces) gets a maintenance window in
           /master/maintenance/schedule (GET, add, POST: a POST replaces the whole schedule);
           /master/machine/down shuts its agent down, its tasks become TASK_LOST and Marathon
           launches them elsewhere; the drain waits until every Marathon app that ran there
           has its instances running on other agents, says where each task went, and leaves
           the machine down.
    up:    /master/machine/up (Mesos also drops the machine from the schedule; a window left
           over is removed), start-services on the host, then wait until its agent is
           registered and active again (offers go to frameworks from then on).

Marathon 1.4 replaces a task of a DOWN machine after the app's
unreachableStrategy.inactiveAfterSeconds (300 s by default): the wait says so while it lasts.
Every call is bounded (tasks.http); the masters are found as `tasks.status` finds them.
"""

from __future__ import annotations

import json
import time

from tasks import http, progress, status
from tasks.marathon import Marathon
from tasks.model import Cluster, Host

POLL = 1.0


class MaintenanceError(Exception):
    """A maintenance call that failed: the message names the call and what the master said."""


def _leader(cluster: Cluster, timeout: float) -> Host:
    found = status.parallel({m.name: (status.mesos_metrics, m, timeout) for m in cluster.masters})
    elected = [n for n, p in found.items() if p.value and p.value["elected"]]
    if len(elected) != 1:
        seen = "; ".join(f"{n}: {p.error or ('elected' if p.value['elected'] else 'standby')}"
                         for n, p in found.items())
        raise MaintenanceError(f"no single elected Mesos master ({seen})")
    return cluster.find(elected[0])


def _call(leader: Host, method: str, path: str, timeout: float, body=None) -> http.Response:
    url = f"http://{leader.ip}:{leader.settings.mesos_port}/master{path}"
    with http.Client() as client:
        r = client.request(method, url, json_body=body, timeout=timeout)
    if r.status != 200:
        raise MaintenanceError(f"{method} {url}: HTTP {r.status} {' '.join(r.text.split())[:300]}")
    return r


def machine_of(cluster: Cluster, leader: Host, host: Host, timeout: float) -> dict:
    """The MachineID of the agent on `host` as the master knows it (hostname and the IP of its
    pid), or as the tool configures it (set-ip-hostname: both the inventory's ip)."""
    agents, _ = status.mesos_state(leader, timeout)
    mine = status.agents_of(agents, host)
    if mine:
        return {"hostname": mine[0]["hostname"], "ip": mine[0]["ip"]}
    return {"hostname": host.ip, "ip": host.ip}


def _same(a: dict, b: dict) -> bool:
    return a.get("hostname", "").lower() == b.get("hostname", "").lower() and \
        a.get("ip") == b.get("ip")


def schedule_with(schedule: dict, machine: dict, start_ns: int, duration_ns: int) -> dict | None:
    """The schedule with a window for `machine`, every other window kept; None when it has one."""
    windows = list(schedule.get("windows", []))
    if any(_same(m, machine) for w in windows for m in w.get("machine_ids", [])):
        return None
    windows.append({"machine_ids": [machine], "unavailability": {
        "start": {"nanoseconds": start_ns}, "duration": {"nanoseconds": duration_ns}}})
    return {"windows": windows}


def schedule_without(schedule: dict, machine: dict) -> dict | None:
    """The schedule without `machine` (a window left empty goes); None when it is not in it."""
    windows, found = [], False
    for w in schedule.get("windows", []):
        ids = [m for m in w.get("machine_ids", []) if not _same(m, machine)]
        found |= len(ids) != len(w.get("machine_ids", []))
        if ids:
            windows.append({**w, "machine_ids": ids})
    return {"windows": windows} if found else None


def _down(leader: Host, timeout: float) -> list[dict]:
    return _call(leader, "GET", "/maintenance/status", timeout).json_object().get(
        "down_machines", [])


def _on(apps: list[dict], address: str) -> dict[str, set[str]]:
    """{app id: ids of its tasks on the agent at `address`}."""
    return {a["id"]: {t["id"] for t in a.get("tasks", []) if t.get("host") == address}
            for a in apps}


def drain(cluster: Cluster, host: Host, *, hours: float, timeout: float,
          call_timeout: float = 10.0) -> list[str]:
    """See the module's docstring; returns the report's lines."""
    leader = _leader(cluster, call_timeout)
    machine = machine_of(cluster, leader, host, call_timeout)
    lines = []
    current = _call(leader, "GET", "/maintenance/schedule", call_timeout).json_object()
    wanted = schedule_with(current, machine, time.time_ns(), int(hours * 3600 * 10**9))
    if wanted is not None:
        _call(leader, "POST", "/maintenance/schedule", call_timeout, wanted)
        lines.append(f"{host.name}: scheduled for maintenance ({json.dumps(machine)}, {hours:g} h);"
                     f" {len(wanted['windows']) - 1} other window(s) kept")
    with Marathon.for_cluster(cluster, timeout=call_timeout, log=status.quiet) as marathon:
        before = {a["id"]: a for a in marathon.apps()}
        moving = {app: ids for app, ids in _on(list(before.values()), machine["ip"]).items() if ids}
        if not any(_same(m, machine) for m in _down(leader, call_timeout)):
            _call(leader, "POST", "/machine/down", call_timeout, [machine])
            lines.append(f"{host.name}: machine down: its agent shut down, its tasks lost")
        deadline = time.monotonic() + timeout
        with progress.waiting(f"tasks of {', '.join(moving) or 'no app'} running elsewhere",
                              host=host.name) as wait:
            while True:
                apps = {a["id"]: a for a in marathon.apps()}
                short = _relaunch_pending(apps, moving, machine["ip"])
                if not short:
                    break
                wait.update("; ".join(short))
                if time.monotonic() > deadline:
                    raise MaintenanceError(
                        f"{host.name} is down, but after {timeout:g} s Marathon has not "
                        f"relaunched: {'; '.join(short)} (it replaces an unreachable task after "
                        f"the app's unreachableStrategy.inactiveAfterSeconds, 300 s by default)")
                time.sleep(POLL)
    for app, ids in moving.items():
        new = [t for t in apps[app].get("tasks", []) if t["id"] not in
               {x["id"] for x in before[app].get("tasks", [])}]
        for old, task in zip(sorted(ids), new):
            lines.append(f"{host.name}: {old} -> {task['id']} on {task['host']}")
    lines.append(f"{host.name}: drained; it stays down until `fab -H {host.name} agent-up`")
    return lines


def _relaunch_pending(apps: dict[str, dict], moving: dict[str, set[str]], address: str) -> list[str]:
    """What keeps the drain waiting: per app that ran on the agent, instances not yet running
    on another agent."""
    short = []
    for app_id in moving:
        app = apps.get(app_id)
        if app is None:
            continue        # destroyed meanwhile: nothing to relaunch
        running = [t for t in app.get("tasks", []) if t.get("state") == "TASK_RUNNING"
                   and t.get("host") != address]
        if len(running) < app.get("instances", 0):
            short.append(f"{app_id}: {len(running)}/{app['instances']} running elsewhere")
    return short


def up(cluster: Cluster, host: Host, *, call_timeout: float = 10.0) -> list[str]:
    """The maintenance half of agent-up: /machine/up and the schedule without the machine."""
    leader = _leader(cluster, call_timeout)
    machine = machine_of(cluster, leader, host, call_timeout)
    lines = []
    if any(_same(m, machine) for m in _down(leader, call_timeout)):
        _call(leader, "POST", "/machine/up", call_timeout, [machine])
        lines.append(f"{host.name}: machine up")
    current = _call(leader, "GET", "/maintenance/schedule", call_timeout).json_object()
    wanted = schedule_without(current, machine)
    if wanted is not None:
        _call(leader, "POST", "/maintenance/schedule", call_timeout, wanted)
        lines.append(f"{host.name}: out of the maintenance schedule")
    return lines


def wait_active(cluster: Cluster, host: Host, *, timeout: float, call_timeout: float = 5.0) -> str:
    """Until the agent on `host` is registered with the leading master and active."""
    deadline = time.monotonic() + timeout
    with progress.waiting("its agent registered and active", host=host.name) as wait:
        while True:
            try:
                leader = _leader(cluster, call_timeout)
                agents, _ = status.mesos_state(leader, call_timeout)
                if any(a["active"] for a in status.agents_of(agents, host)):
                    return f"{host.name}: agent active with {leader.name}"
                seen = "not registered"
            except (MaintenanceError, http.HttpError, status.BadAnswer) as exc:
                seen = str(exc)
            wait.update(seen)
            if time.monotonic() > deadline:
                raise MaintenanceError(f"{host.name}: agent not active after {timeout:g} s: {seen}")
            time.sleep(POLL)
