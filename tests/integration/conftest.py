"""Shared probes for the integration tests: the real `fab` command line against the testbed,
and independent checks (ssh + cat, ZooKeeper's four-letter words, HTTP).

Every probe targets the testbed's own addresses, and only while its state file says it is up.
All of it acts on the testbed instance $MESOS_TESTBED names (tb_config.INSTANCE; unset: the
default one): `MESOS_TESTBED=x .venv/bin/python -m pytest tests/integration` runs entirely
on x.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from testbed import config as tb_config
from testbed import hosts as tb

ROOT = Path(__file__).resolve().parents[2]
MASTERS = ("master1", "master2", "master3")
SLAVES = ("slave1", "slave2", "slave3")


FAB = str(ROOT / "bin" / "fab")


def fab_env(inventory: Path | None = None, **env: str) -> dict:
    """The environment of a `fab` run on `inventory` (default: the testbed's own)."""
    return dict(os.environ, FABRIC_INVENTORY=str(inventory or tb_config.INVENTORY), **env)


def fab(*args: str, timeout: float = 900, inventory: Path | None = None,
        env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the operator's `bin/fab` command line on the testbed's inventory (or `inventory`,
    with `env` added); output is echoed for CI logs."""
    started = time.monotonic()
    proc = subprocess.run([FAB, *args], cwd=ROOT, env=fab_env(inventory, **(env or {})),
                          capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    print(f"$ fab {' '.join(args)}  (exit {proc.returncode}, {time.monotonic() - started:.1f} s)")
    print(proc.stdout[-6000:], proc.stderr[-3000:], sep="\n")
    return proc


def require_up() -> dict:
    state = tb.load_state()
    assert state is not None, "the testbed is not up"
    return state


def ip(name: str) -> str:
    return tb.host_ip(name)


def cat(name: str, path: str) -> str:
    result = tb.ssh(name, f"cat {path}")
    assert result.returncode == 0, f"{name}: cat {path}: {result.stderr}"
    return result.stdout


def zk_mode(name: str) -> str:
    require_up()
    try:
        with socket.create_connection((ip(name), 2181), timeout=3) as s:
            s.sendall(b"srvr")
            data = b""
            while chunk := s.recv(4096):
                data += chunk
    except OSError as exc:
        return f"down ({exc})"
    for line in data.decode().splitlines():
        if line.startswith("Mode: "):
            return line[6:]
    return "not serving"


def http_get(name: str, port: int, path: str, **kwargs):
    require_up()
    return requests.get(f"http://{ip(name)}:{port}{path}", timeout=5, allow_redirects=False, **kwargs)


def try_json(name: str, port: int, path: str):
    try:
        r = http_get(name, port, path)
        return r.json() if r.status_code == 200 else None
    except (requests.RequestException, ValueError):
        return None


def wait_for(what: str, check, timeout: float = 60, interval: float = 1.0):
    """Poll `check()` until it returns a truthy value; fail naming `what` and the last value."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = check()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"{what} not reached within {timeout} s; last: {last!r}")


def mesos_leader(masters=MASTERS) -> str | None:
    leaders = [m for m in masters
               if (try_json(m, 5050, "/metrics/snapshot") or {}).get("master/elected") == 1]
    return leaders[0] if len(leaders) == 1 else None


def active_agents(leader: str) -> list[str]:
    state = try_json(leader, 5050, "/master/state") or {}
    return sorted(a["hostname"] for a in state.get("slaves", []) if a.get("active"))


def service_start(name: str, service: str) -> str:
    """What changes when a service (re)starts: its main PID and activation time."""
    out = tb.ssh(name, f"systemctl show -p MainPID -p ActiveEnterTimestampMonotonic {service}").stdout
    return " ".join(sorted(out.split()))


@pytest.fixture(scope="session")
def fresh_testbed():
    """A testbed whose hosts have never been touched by the tool: down, then up."""
    tb.down(log=lambda *a: None)
    started = time.monotonic()
    tb.up()
    print(f"testbed up in {time.monotonic() - started:.1f} s")
    yield require_up()
