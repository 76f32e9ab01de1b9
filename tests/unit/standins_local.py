"""Helpers for the unit tests that run the stand-in daemons on loopback (test equipment):
free ports, polling, and a minimal framework that speaks the stand-in master's `/standin/*`
protocol (register, launch, kill, status updates) the way the stand-in Marathon does."""
import random
import socket
import time

from testbed.standins import common


# The stand-ins listen on their real default ports (5050, 5051, 8080), so each test process
# takes a /24 of its own in 127.0.0.0/8: two runs at once on one machine never share an address.
NET = f"127.{random.randrange(1, 255)}.{random.randrange(256)}"


def loopback(n: int) -> str:
    """Address n of this process's loopback /24."""
    return f"{NET}.{n}"


def free_port(ip="127.0.0.1"):
    with socket.socket() as s:
        s.bind((ip, 0))
        return s.getsockname()[1]


def wait(predicate, timeout=30.0, step=0.2, what="condition"):
    """Poll until `predicate()` is truthy (connection errors count as not yet); return it."""
    deadline = time.time() + timeout
    value = None
    while time.time() < deadline:
        try:
            value = predicate()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"{what} not met within {timeout} s; last value {value!r}")


def get(url):
    return common.call("GET", url)[1]


def get_ok(url):
    """The body of a 200 answer, else None (a standby holding, then refusing, a request)."""
    status, body, _ = common.call("GET", url)
    return body if status == 200 else None


def post(url, payload=None, raw=None):
    """POST JSON (or raw bytes) -> (status, body, headers)."""
    if raw is not None:
        status, body, headers = common.raw_call("POST", url, raw,
                                                {"Content-Type": "application/json"})
        return status, body.decode(), headers
    return common.call("POST", url, payload)


class Framework:
    """A scheduler registered with the leading master at `url` (http://ip:port)."""

    def __init__(self, url, name="test", partition_aware=True):
        self.url, self.name, self.id = url, name, None
        self.capabilities = [{"type": "PARTITION_AWARE"}] if partition_aware else []
        self.id = wait(self.register, what="registration")

    def register(self):
        """(Re-)register, as a scheduler does with each new master; -> framework id."""
        return self._call("register_framework", {
            "framework_id": self.id, "name": self.name,
            "capabilities": self.capabilities}).get("framework_id")

    def _call(self, name, body):
        status, reply, _ = common.call("POST", f"{self.url}/standin/{name}", body)
        return reply if status == 200 else {}

    def launch(self, agent_id, task_id, cmd):
        self.register()  # a framework silent for 15 s counts as inactive
        status, reply, _ = common.call("POST", f"{self.url}/standin/launch", {
            "framework_id": self.id, "agent_id": agent_id, "task": {
                "task_id": task_id, "name": task_id, "command": {"value": cmd},
                "resources": {"cpus": 0.1, "mem": 16}}})
        assert status == 200, reply

    def updates(self):
        return self._call("updates", {"framework_id": self.id}).get("updates", [])

    def tasks(self, url=None):
        """{task id: state} in the master's /master/state, live, unreachable and completed."""
        state = get(f"{url or self.url}/master/state")
        fw = next((f for f in state["frameworks"] if f["id"] == self.id), None)
        if fw is None:
            return {}
        return {t["id"]: t["state"] for key in ("completed_tasks", "unreachable_tasks", "tasks")
                for t in fw.get(key, [])}
