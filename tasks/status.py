"""`fab cluster-status`: the cluster as its own services see it, asked over the network.

ZooKeeper's `srvr` four-letter word on each master, each mesos-master's /metrics/snapshot and
the leader's /master/state, Marathon's /v2/leader and /v2/apps with their tasks. Read-only; it
needs the control machine to reach the masters' addresses (as the tutorial's browser does).
"""

from __future__ import annotations

import socket

import requests

from tasks.inventory import Cluster

TIMEOUT = 3.0


def zookeeper_mode(ip: str, port: int) -> str:
    """`leader`, `follower`, `standalone`, `not serving` or the connection error."""
    try:
        with socket.create_connection((ip, port), timeout=TIMEOUT) as sock:
            sock.sendall(b"srvr")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
    except OSError as exc:
        return f"unreachable ({exc.strerror or exc})"
    for line in data.decode(errors="replace").splitlines():
        if line.startswith("Mode: "):
            return line[len("Mode: "):]
    return "not serving"


def _get(url: str):
    try:
        r = requests.get(url, timeout=TIMEOUT, allow_redirects=False)
        return r.json() if r.status_code == 200 else None
    except (requests.RequestException, ValueError):
        return None


def collect(cluster: Cluster) -> dict:
    s = cluster.settings
    state: dict = {"zookeeper": {}, "mesos": {}, "marathon": {}, "agents": [], "apps": []}
    leader_ip = None
    for m in cluster.masters:
        state["zookeeper"][m.name] = zookeeper_mode(m.ip, s.zk_port)
        metrics = _get(f"http://{m.ip}:{m.settings.mesos_port}/metrics/snapshot")
        if metrics is None:
            state["mesos"][m.name] = "unreachable"
        else:
            elected = metrics.get("master/elected") == 1
            state["mesos"][m.name] = "leader" if elected else "standby"
            leader_ip = m.ip if elected else leader_ip
        # /v2/leader, not /v2/info: a standby proxies most requests to the leader, so its
        # /v2/info says "elected" too.
        leader = _get(f"http://{m.ip}:{m.settings.marathon_port}/v2/leader")
        state["marathon"][m.name] = ("unreachable" if leader is None
                                     else "leader" if leader.get("leader") == f"{m.ip}:{m.settings.marathon_port}"
                                     else "standby")
    if leader_ip:
        master_state = _get(f"http://{leader_ip}:{s.mesos_port}/master/state") or {}
        state["agents"] = [(a.get("hostname"), a.get("active")) for a in master_state.get("slaves", [])]
    for m in cluster.masters:
        apps = _get(f"http://{m.ip}:{m.settings.marathon_port}/v2/apps?embed=apps.tasks")
        if apps is not None:
            state["apps"] = [(a["id"], a.get("instances"), a.get("tasksRunning"),
                              [(t.get("host"), t.get("state")) for t in a.get("tasks", [])])
                             for a in apps.get("apps", [])]
            break
    return state


def format_state(state: dict) -> str:
    rows = ["ZooKeeper:  " + ", ".join(f"{h} {m}" for h, m in state["zookeeper"].items()),
            "Mesos:      " + ", ".join(f"{h} {m}" for h, m in state["mesos"].items()),
            "Marathon:   " + ", ".join(f"{h} {m}" for h, m in state["marathon"].items()),
            f"Agents:     {sum(1 for _, active in state['agents'] if active)} active: "
            + ", ".join(h for h, active in state["agents"] if active)]
    for app_id, instances, running, tasks in state["apps"]:
        where = ", ".join(f"{h} {st}" for h, st in tasks) or "no tasks"
        rows.append(f"App {app_id}: {running}/{instances} running ({where})")
    if not state["apps"]:
        rows.append("Apps:       none")
    return "\n".join(rows)
