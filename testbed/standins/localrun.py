"""Run the stand-ins (and a throw-away ZooKeeper) on loopback addresses: test equipment.

Used by the unit tests and by hand to try a whole cluster on one machine without hosts:
3 masters on 127.0.0.1-3, agents on 127.0.0.51-52, each a child process stopped by its PID.
ZooKeeper is Debian's `zookeeper` package run directly with a temporary config and data dir
(no system service is enabled or touched).
"""
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time

ZOOKEEPER_JAR = pathlib.Path("/usr/share/java/zookeeper.jar")
REPO_ROOT = pathlib.Path(__file__).resolve().parents[2]


def zookeeper_available():
    return ZOOKEEPER_JAR.exists() and bool(_which("java"))


def _which(name):
    for d in os.environ.get("PATH", "").split(os.pathsep):
        if os.access(os.path.join(d, name), os.X_OK):
            return os.path.join(d, name)
    return None


class Proc:
    """A child process with its log file; stop() sends SIGTERM then SIGKILL to its PID only."""

    def __init__(self, args, log, cwd=None, env=None):
        self.args, self.log = args, log
        with open(log, "ab") as out:
            self.popen = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                          env=env, stdin=subprocess.DEVNULL)
        self.pid = self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def kill(self, sig=signal.SIGKILL):
        if self.alive():
            os.kill(self.pid, sig)
            self.popen.wait()

    def stop(self, timeout=10):
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.popen.returncode

    def output(self):
        return pathlib.Path(self.log).read_text(errors="replace")


def wait_port(host, port, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{host}:{port} not listening after {timeout}s")


def start_zookeeper(workdir, port=2181):
    """Standalone ZooKeeper on 127.0.0.1:port with its data under workdir."""
    workdir = pathlib.Path(workdir)
    (workdir / "data").mkdir(parents=True, exist_ok=True)
    cfg = workdir / "zoo.cfg"
    cfg.write_text(f"tickTime=2000\ndataDir={workdir / 'data'}\nclientPort={port}\n"
                   "clientPortAddress=127.0.0.1\nadmin.enableServer=false\n"
                   "4lw.commands.whitelist=ruok,srvr\n")
    proc = Proc(["java", "-Xmx128m", "-cp", str(ZOOKEEPER_JAR),
                 "org.apache.zookeeper.server.ZooKeeperServerMain", str(cfg)],
                str(workdir / "zookeeper.log"))
    wait_port("127.0.0.1", port)
    return proc


def standin(module, args, log, env=None, versions=None):
    """Start `python3 -m testbed.standins.<module> ARGS` from the repository root; with
    `versions` ({"marathon": "1.6.322"}), a copy of the modules that reports those versions, as
    the packaged daemons do (testbed/repo.py writes the same `_versions.json`)."""
    package, root = "testbed.standins", REPO_ROOT
    if versions:
        root = pathlib.Path(log).with_suffix(".pkg")
        copy = root / "standins"
        copy.mkdir(parents=True, exist_ok=True)
        for src in (REPO_ROOT / "testbed/standins").glob("*.py"):
            shutil.copy(src, copy / src.name)
        (copy / "_versions.json").write_text(json.dumps(versions))
        package = "standins"
    full_env = dict(os.environ, PYTHONPATH=str(root), **(env or {}))
    return Proc([sys.executable, "-m", f"{package}.{module}", *args], log,
                cwd=str(root), env=full_env)


def stop_cluster(procs, agent_work_dirs):
    """Stop every daemon of `procs` ({name: Proc}), ZooKeeper ("zk") last, and end the tasks
    the agents leave running."""
    for name, p in procs.items():
        if name != "zk":
            p.stop()
    if "zk" in procs:
        procs["zk"].stop()
    for work_dir in agent_work_dirs:
        kill_checkpointed_tasks(work_dir)


def kill_checkpointed_tasks(work_dir):
    """Tasks outlive their agent (KillMode=process); end them through the agent's checkpoint."""
    for path in pathlib.Path(work_dir).glob("meta/slaves/*/tasks/*.json"):
        try:
            os.killpg(json.loads(path.read_text())["pid"], signal.SIGKILL)
        except (OSError, ValueError, KeyError):
            pass
