"""The README's set-up as a new user meets it: a clean clone, Debian's own Python the only one on
the PATH and nothing else in the environment, then `bin/demo`. What the demo built is checked
from outside the tool (Marathon's HTTP API and the task's sandbox over ssh), then its testbed is
taken down.

The clone is of the committed HEAD (CI runs from a fresh clone, so that is what it tests). The
demo runs on a testbed instance of its own, named after the one this run uses, so the two never
touch each other.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import requests

from testbed import config as tb_config
from testbed import hosts as tb
from tests.integration.conftest import ROOT, wait_for

DEBIAN_ONLY_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"


def instance_beside(name: str) -> str:
    """A valid instance name other than `name`, derived from it."""
    return next(n for n in (("r" + name)[:4], ("s" + name)[:4]) if n != name)


def run(argv, cwd, env, timeout=900) -> subprocess.CompletedProcess:
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)
    print(f"$ {' '.join(map(str, argv))}  (in {cwd}; exit {proc.returncode}, "
          f"{time.monotonic() - started:.1f} s)")
    print(proc.stdout[-6000:], proc.stderr[-3000:], sep="\n")
    return proc


def hello_tasks(masters: list[str]):
    """hello2's running tasks as the first Marathon that answers reports them."""
    for ip in masters:
        try:
            r = requests.get(f"http://{ip}:8080/v2/apps/hello2", timeout=5,
                             allow_redirects=False)
        except requests.RequestException:
            continue
        if r.status_code == 200:
            return [t for t in r.json()["app"].get("tasks", []) if t["state"] == "TASK_RUNNING"]
    return None


def test_readme_demo_from_a_clean_clone_with_debian_python_only(tmp_path):
    instance = tb_config.Instance(instance_beside(tb_config.INSTANCE.name))
    clone = tmp_path / "mesos-fab"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    env = {"PATH": DEBIAN_ONLY_PATH, "HOME": os.environ.get("HOME", "/root"),
           "MESOS_TESTBED": instance.name}
    try:
        # Started from elsewhere: the scripts find their repository themselves.
        demo = run([clone / "bin" / "demo"], cwd=tmp_path, env=env)
        assert demo.returncode == 0, demo.stderr[-3000:]
        assert (clone / ".venv" / "pyvenv.cfg").read_text().splitlines()[0] == "home = /usr/bin"

        state = json.loads((instance.state_dir / "state.json").read_text())
        masters = [h["ip"] for h in state["hosts"] if h["role"] == "master"]
        tasks = wait_for("hello2 running on the demo's cluster",
                         lambda: hello_tasks(masters), timeout=60)
        key = instance.state_dir / "id_ed25519"
        sandbox = subprocess.run(
            ["ssh", "-i", str(key), *tb.SSH_OPTS, f"root@{tasks[0]['host']}",
             f"cat /var/lib/mesos/slaves/*/frameworks/*/executors/{tasks[0]['id']}/runs/*/stdout"],
            capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
        assert "hello" in sandbox.stdout, sandbox.stderr

        # Day to day: bin/fab from any directory, on the inventory the demo wrote; exit 0 is
        # cluster-status's "healthy".
        status = run([clone / "bin" / "fab", "cluster-status"], cwd=tmp_path,
                     env=dict(env, FABRIC_INVENTORY=str(clone / "testbed" / instance.inventory.name)))
        assert status.returncode == 0, status.stdout
    finally:
        down = run([clone / "bin" / "fab", "testbed.down"], cwd=tmp_path, env=env)
    assert down.returncode == 0
    assert not (instance.state_dir / "state.json").exists()
