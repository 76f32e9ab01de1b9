"""Stand-in for `/usr/sbin/mesos-slave` (the Mesos 1.4 agent): TEST EQUIPMENT, not Mesos.

Kept from the real agent: its flags and fatal flag errors; finding the leading master in
ZooKeeper and (re-)registering after every leader change; resources (detected, or --resources);
running each task as `sh -c CMD` in the real sandbox layout
`<work_dir>/slaves/<agent>/frameworks/<fw>/executors/<task>/runs/<run>/{stdout,stderr}`;
status updates TASK_RUNNING/FINISHED/FAILED/KILLED, retried until the master takes them;
checkpointing in `<work_dir>/meta/slaves/latest`: each task's latest state and its terminal
update until the master has it, so a restart (--recover=reconnect) keeps the agent id and the
live tasks in the state they really are in, and a restart with other resources/attributes fails
with "Incompatible agent info" until that link is removed; SIGTERM leaves tasks running (the
real unit has KillMode=process). Re-registering with a master (a new leader, its own restart)
it reports its tasks, from which the master reconciles. Told to shut down by the master (its
machine is DOWN), it kills its tasks, removes `meta/slaves/latest` and exits 0, so that the
next start registers as a new agent.
Dropped: executors, containerizers, isolation (accepted, ignored), the fetcher, disk quotas.
The master reaches it through `/standin/launch` and `/standin/kill` (test equipment only).
"""
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import uuid

from . import common, flags as flagslib, zk as zklib
from .common import Response

log = logging.getLogger("mesos-slave")
PROG = "mesos-slave"
VERSION = common.version("mesos", "1.4.1")
HEARTBEAT = 2.0
KILL_GRACE = 3.0                    # default kill policy grace period of the command executor
EXIT_FILE = ".standin_exit_status"  # the wrapping shell leaves the task's exit code here
TERMINAL = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR"}

_S, _I, _F, _B, _D = str, int, float, bool, "duration"
SPEC = {
    "advertise_ip": (_S, None), "advertise_port": (_I, None), "appc_store_dir": (_S, None),
    "attributes": (_S, None), "authenticatee": (_S, "crammd5"),
    "authentication_backoff_factor": (_D, 1.0), "cgroups_enable_cfs": (_B, False),
    "cgroups_hierarchy": (_S, "/sys/fs/cgroup"), "cgroups_limit_swap": (_B, False),
    "cgroups_root": (_S, "mesos"), "container_disk_watch_interval": (_D, 15.0),
    "containerizers": (_S, "mesos"), "credential": (_S, None), "default_role": (_S, "*"),
    "disk_watch_interval": (_D, 60.0), "docker": (_S, "docker"), "docker_config": (_S, None),
    "docker_registry": (_S, None), "docker_remove_delay": (_D, 21600.0),
    "docker_socket": (_S, "/var/run/docker.sock"), "docker_store_dir": (_S, None),
    "enforce_container_disk_quota": (_B, False), "executor_environment_variables": (_S, None),
    "executor_registration_timeout": (_D, 60.0),
    "executor_shutdown_grace_period": (_D, 5.0), "fetcher_cache_dir": (_S, None),
    "fetcher_cache_size": (_S, None), "frameworks_home": (_S, None), "gc_delay": (_D, 604800.0),
    "gc_disk_headroom": (_F, 0.1), "hadoop_home": (_S, None), "help": (_B, False),
    "hooks": (_S, None), "hostname": (_S, None), "hostname_lookup": (_B, True),
    "http_credentials": (_S, None), "image_providers": (_S, None),
    "initialize_driver_logging": (_B, True), "ip": (_S, None), "ip_discovery_command": (_S, None),
    "isolation": (_S, "posix/cpu,posix/mem"), "launcher": (_S, "posix"),
    "launcher_dir": (_S, "/usr/libexec/mesos"), "log_dir": (_S, None), "logbufsecs": (_I, 0),
    "logging_level": (_S, "INFO"), "master": (_S, None), "master_detector": (_S, None),
    "modules": (_S, None), "modules_dir": (_S, None), "oversubscribed_resources_interval": (_D, 15.0),
    "port": (_I, 5051), "quiet": (_B, False), "recover": (_S, "reconnect"),
    "recovery_timeout": (_D, 900.0), "registration_backoff_factor": (_D, 1.0),
    "resources": (_S, None), "revocable_cpu_low_priority": (_B, True),
    "sandbox_directory": (_S, "/mnt/mesos/sandbox"), "strict": (_B, True),
    "switch_user": (_B, True), "systemd_enable_support": (_B, True),
    "systemd_runtime_directory": (_S, "/run/systemd/system"), "version": (_B, False),
    "work_dir": (_S, None), "zk_session_timeout": (_D, 10.0),
}


def load_flags(argv, environ=None):
    """Parse and validate like slave/main.cpp; raises FlagError with the real text."""
    f = flagslib.parse_mesos(argv, SPEC, environ)
    if f["help"] or f["version"]:
        return f
    if not f["work_dir"]:  # a required flag in stout since Mesos 1.0
        raise flagslib.FlagError("Flag 'work_dir' is required, but it was not provided")
    if not f["master"] and not f["master_detector"]:
        raise flagslib.FlagError("Missing required option `--master` or `--master_detector`")
    master = f["master"] or ""
    if master.startswith("file://"):
        with open(master[len("file://"):]) as fh:
            master = f["master"] = fh.read().strip()
    if master.startswith("zk://"):
        try:
            zklib.parse_zk_url(master)
        except zklib.ZkUrlError as e:
            raise flagslib.FlagError(f"Failed to create a master detector: {e}") from None
    try:
        common.parse_resources(f["resources"])
    except ValueError as e:
        raise flagslib.FlagError(f"Failed to determine agent resources: {e}") from None
    return f


def detect_resources(work_dir, text):
    """Mesos' defaults (all CPUs; memory minus what the OS needs; the work_dir's disk; ports
    31000-32000), overridden by --resources."""
    with open("/proc/meminfo") as f:
        total_mb = int(f.readline().split()[1]) // 1024
    # The file system's size, not its free space (Mesos' fs::size): free space moves between
    # two starts, and the agent would then refuse its own checkpoint as incompatible.
    st = os.statvfs(work_dir)
    disk_mb = st.f_blocks * st.f_frsize // (1024 * 1024)
    res = {"cpus": float(os.cpu_count() or 1),
           "mem": float(max(total_mb - 1024, total_mb // 2)),
           "disk": float(disk_mb - 10 * 1024 if disk_mb >= 20 * 1024 else disk_mb // 2),
           "ports": "[31000-32000]"}
    res.update(common.parse_resources(text))
    return res


def parse_attributes(text):
    out = {}
    for item in filter(None, (text or "").split(";")):
        k, _, v = item.partition(":")
        out[k] = float(v) if v.replace(".", "", 1).isdigit() else v
    return out


class Agent:
    def __init__(self, flags):
        self.flags = flags
        self.ip = flags["ip"] or "127.0.0.1"
        self.port = flags["port"]
        self.hostname = flags["hostname"] or self.ip
        self.pid = f"slave(1)@{self.ip}:{self.port}"
        self.work_dir = os.path.abspath(flags["work_dir"])
        os.makedirs(self.work_dir, exist_ok=True)
        self.resources = detect_resources(self.work_dir, flags["resources"])
        self.attributes = parse_attributes(flags["attributes"])
        self.info = {"hostname": self.hostname, "port": self.port,
                     "resources": common.resources_text(self.resources),
                     "attributes": flags["attributes"] or ""}
        self.id = None
        self.master = None          # MasterInfo of the master we are registered with
        self.registered = False
        self.lock = threading.RLock()
        self.tasks = {}             # task id -> task record (live)
        self.completed = []         # finished task records, newest last
        self.updates = []           # status updates not yet taken by the master
        self.start_time = time.time()
        self.stopping = False
        self.wake = threading.Event()
        self.shut_down = threading.Event()   # the master told this agent to shut down

    # ---- checkpoint: meta/slaves/latest ------------------------------------------------
    @property
    def meta(self):
        return os.path.join(self.work_dir, "meta", "slaves")

    def recover(self):
        """Reuse the checkpointed agent id and tasks; refuse an incompatible agent info."""
        latest = os.path.join(self.meta, "latest")
        if not os.path.exists(latest):
            return
        with open(os.path.join(latest, "slave.info")) as f:
            old = json.load(f)
        if {k: old.get(k) for k in self.info} != self.info:
            raise SystemExit(_incompatible(old, self.info, self.work_dir))
        self.id = old["id"]
        task_dir = os.path.join(latest, "tasks")
        for name in sorted(os.listdir(task_dir)) if os.path.isdir(task_dir) else []:
            with open(os.path.join(task_dir, name)) as f:
                task = json.load(f)
            task["proc"] = None
            if task["state"] in TERMINAL:  # its last update never reached a master: resend
                self.completed.append(task)
                self.updates.append(self._status_update(task, task["state"],
                                                        task.get("message", "")))
                continue
            self.tasks[task["id"]] = task
            threading.Thread(target=self._watch_adopted, args=(task,), daemon=True).start()
        log.info("Recovered agent %s with %d live task(s)", self.id, len(self.tasks))

    def _checkpoint_info(self):
        d = os.path.join(self.meta, self.id)
        os.makedirs(os.path.join(d, "tasks"), exist_ok=True)
        with open(os.path.join(d, "slave.info"), "w") as f:
            json.dump(dict(self.info, id=self.id), f, indent=1)
        latest = os.path.join(self.meta, "latest")
        if not os.path.islink(latest) or os.readlink(latest) != self.id:
            tmp = latest + ".tmp"
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(self.id, tmp)
            os.replace(tmp, latest)

    def _task_file(self, task_id):
        return os.path.join(self.meta, self.id, "tasks", task_id + ".json")

    def _checkpoint_task(self, task):
        """The task as it is now (atomically): what a restarted agent recovers and reports."""
        path = self._task_file(task["id"])
        with open(path + ".tmp", "w") as f:
            json.dump(self._public(task, private=True), f)
        os.replace(path + ".tmp", path)

    # ---- master: registration, heartbeats, status updates -----------------------------
    def loop(self, detector):
        while not self.stopping:
            try:
                self._heartbeat(detector)
            except Exception:
                log.exception("heartbeat failed")
            time.sleep(HEARTBEAT)

    def _heartbeat(self, detector):
        leader = detector.leader()
        if leader is None:
            if self.master is not None:
                log.warning("Lost leading master")
            self.master, self.registered = None, False
            return
        if self.master is None or leader.get("id") != self.master.get("id"):
            log.info("New master detected at %s", leader["pid"])
            self.master, self.registered = leader, False
        body = {"agent_id": self.id, "hostname": self.hostname, "ip": self.ip,
                "port": self.port, "pid": self.pid, "resources": self.resources,
                "attributes": self.attributes, "version": VERSION}
        if not self.registered:  # (re-)registration: the master reconciles from our tasks
            with self.lock:
                body["tasks"] = [self._public(t) for t in self.tasks.values()]
        try:
            status, reply, _ = common.call("POST", detector.url(leader) +
                                           "/standin/register_agent", body)
        except OSError as e:
            log.warning("Master %s unreachable: %s", leader["pid"], e)
            return
        if status == 409:  # this master does not know us (any more): re-register
            self.registered = False
            return
        if status != 200:
            return  # not recovered yet, or not the leader any more: try again
        if "shutdown" in reply:
            self.shutdown(leader["pid"], reply["shutdown"])
            return
        if not self.registered:
            verb = "Re-registered" if self.id else "Registered"
            log.info("%s with master %s; given agent ID %s", verb, leader["pid"],
                     reply["agent_id"])
        if self.id != reply["agent_id"]:
            self.id = reply["agent_id"]
            self._checkpoint_info()
        self.registered = True
        self.wake.set()

    def _flush_updates(self, master_url):
        with self.lock:
            pending = list(self.updates)
        for update in pending:
            try:
                status, _, _ = common.call("POST", master_url + "/standin/status_update", update)
            except OSError:
                return
            if status != 200:
                return
            with self.lock:
                self.updates.remove(update)
                if update["state"] in TERMINAL:  # the master has it: forget the task
                    try:
                        os.unlink(self._task_file(update["task_id"]))
                    except OSError:
                        pass

    def _update(self, task, state, message=""):
        log.info("Task %s is in state %s %s", task["id"], state, message)
        with self.lock:
            task["state"] = state
            task["message"] = message
            task["statuses"].append({"state": state, "timestamp": time.time()})
            self._checkpoint_task(task)
            self.updates.append(self._status_update(task, state, message))
            if state in TERMINAL:
                self.tasks.pop(task["id"], None)
                self.completed = (self.completed + [task])[-100:]
        self.wake.set()  # sent by the flusher thread: never block a caller on the master

    def _status_update(self, task, state, message):
        return {"agent_id": self.id, "framework_id": task["framework_id"],
                "framework_name": task.get("framework_name", ""), "task_id": task["id"],
                "state": state, "message": message, "task": self._public(task)}

    def flusher(self):
        while not self.stopping:
            self.wake.wait(HEARTBEAT)
            self.wake.clear()
            master = self.master
            if master and self.registered:
                self._flush_updates(zklib.MasterDetector.url(master))

    # ---- tasks -------------------------------------------------------------------------
    def launch(self, framework, spec):
        tid = spec["task_id"]
        run = str(uuid.uuid4())
        executor_dir = os.path.join(self.work_dir, "slaves", self.id, "frameworks",
                                    framework["id"], "executors", tid, "runs")
        sandbox = os.path.join(executor_dir, run)
        os.makedirs(sandbox)
        latest = os.path.join(executor_dir, "latest")
        if not os.path.lexists(latest):
            os.symlink(run, latest)
        cmd = spec["command"]["value"]
        env = dict(os.environ, **spec.get("env", {}))
        env.update(MESOS_SANDBOX=sandbox, MESOS_DIRECTORY=sandbox, MESOS_TASK_ID=tid,
                   MESOS_FRAMEWORK_ID=framework["id"], MESOS_AGENT_ID=self.id,
                   MESOS_SLAVE_ID=self.id, HOST=self.hostname)
        task = {"id": tid, "name": spec["name"], "framework_id": framework["id"],
                "framework_name": framework.get("name", ""), "executor_id": "",
                "slave_id": self.id, "state": "TASK_STAGING", "resources": spec["resources"],
                "labels": spec.get("labels", []), "statuses": [], "directory": sandbox,
                "command": cmd, "killed": False}
        with open(os.path.join(sandbox, "stdout"), "ab") as out, \
                open(os.path.join(sandbox, "stderr"), "ab") as err:
            # The outer shell records the exit code, so that a restarted agent, which is no
            # longer the task's parent, can still tell FINISHED from FAILED.
            proc = subprocess.Popen(
                ["/bin/sh", "-c", 'sh -c "$1"; rc=$?; echo $rc > "$2"; exit $rc', "sh", cmd,
                 os.path.join(sandbox, EXIT_FILE)],
                cwd=sandbox, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                start_new_session=True)
        task["pid"] = proc.pid
        task["proc"] = proc
        with self.lock:
            self.tasks[tid] = task
            self._checkpoint_task(task)
        self._update(task, "TASK_RUNNING")
        threading.Thread(target=self._watch_child, args=(task,), daemon=True).start()

    def _watch_child(self, task):
        task["proc"].wait()
        self._finished(task)

    def _watch_adopted(self, task):
        while _alive(task["pid"]):
            time.sleep(0.5)
        self._finished(task)

    def _finished(self, task):
        try:
            with open(os.path.join(task["directory"], EXIT_FILE)) as f:
                rc = int(f.read().strip())
        except (OSError, ValueError):
            rc = None
        if task.get("killed"):
            self._update(task, "TASK_KILLED", "Command terminated with signal Terminated")
        elif rc == 0:
            self._update(task, "TASK_FINISHED", "Command exited with status 0")
        else:
            self._update(task, "TASK_FAILED", f"Command exited with status {rc}")

    def kill(self, tid):
        with self.lock:
            task = self.tasks.get(tid)
        if task is None:
            return False
        task["killed"] = True
        _signal_group(task["pid"], signal.SIGTERM)
        threading.Timer(KILL_GRACE, _signal_group, (task["pid"], signal.SIGKILL)).start()
        return True

    def shutdown(self, master_pid, message):
        """The master's ShutdownMessage: kill every task, forget this agent's identity
        (meta/slaves/latest), and end the process (main() returns 0)."""
        if self.shut_down.is_set():
            return
        log.info("Agent asked to shut down by %s because '%s'", master_pid, message)
        self.stopping = True
        with self.lock:
            tids = list(self.tasks)
        for tid in tids:
            self.kill(tid)
        deadline = time.time() + KILL_GRACE + 2
        while any(_alive(t["pid"]) for t in list(self.tasks.values())) \
                and time.time() < deadline:
            time.sleep(0.1)
        try:
            os.unlink(os.path.join(self.meta, "latest"))
        except FileNotFoundError:
            pass
        log.info("Agent terminating")
        self.shut_down.set()

    # ---- HTTP --------------------------------------------------------------------------
    @staticmethod
    def _public(task, private=False):
        hidden = {"proc", "killed", "command"} if not private else {"proc"}
        return {k: v for k, v in task.items() if k not in hidden}

    def state(self):
        with self.lock:
            frameworks = {}
            for t in list(self.tasks.values()) + self.completed:
                fw = frameworks.setdefault(t["framework_id"], {
                    "id": t["framework_id"], "name": t.get("framework_name", ""),
                    "executors": []})
                live = t["id"] in self.tasks
                fw["executors"].append({
                    "id": t["id"], "name": f"Command Executor (Task: {t['id']})",
                    "source": t["id"], "directory": t["directory"],
                    "tasks": [self._public(t)] if live else [],
                    "completed_tasks": [] if live else [self._public(t)],
                    "queued_tasks": [], "resources": t["resources"]})
            master = self.master or {}
            return {
                "version": VERSION, "id": self.id or "", "pid": self.pid,
                "hostname": self.hostname, "start_time": self.start_time,
                "master_hostname": master.get("hostname", ""), "resources": self.resources,
                "attributes": self.attributes, "flags": flagslib.to_json(self.flags, SPEC),
                "frameworks": list(frameworks.values()), "completed_frameworks": [],
                "log_dir": self.flags["log_dir"] or "",
            }

    def metrics(self):
        with self.lock:
            done = [t["state"] for t in self.completed]
            return {"slave/registered": 1.0 if self.registered else 0.0,
                    "slave/uptime_secs": time.time() - self.start_time,
                    "slave/tasks_running": float(len(self.tasks)),
                    "slave/tasks_finished": float(done.count("TASK_FINISHED")),
                    "slave/tasks_failed": float(done.count("TASK_FAILED")),
                    "slave/tasks_killed": float(done.count("TASK_KILLED")),
                    "slave/cpus_total": self.resources.get("cpus", 0.0),
                    "slave/mem_total": self.resources.get("mem", 0.0)}

    def handle(self, req):
        p = req.path.rstrip("/") or "/"
        if p in ("/state", "/state.json", "/slave(1)/state", "/slave(1)/state.json"):
            return Response(200, self.state())
        if p in ("/health", "/slave(1)/health"):
            return Response(200)
        if p in ("/flags", "/slave(1)/flags"):
            return Response(200, {"flags": flagslib.to_json(self.flags, SPEC)})
        if p == "/metrics/snapshot":
            return Response(200, self.metrics())
        if p == "/version":
            return Response(200, {"version": VERSION, "build_user": "standin"})
        if p == "/files/read":  # what the web UI's "Sandbox" link reads
            return self._read_file(req.query)
        if p == "/standin/launch" and req.method == "POST":
            body = req.json()
            self.launch(body["framework"], body["task"])
            return Response(200, {})
        if p == "/standin/kill" and req.method == "POST":
            return Response(200 if self.kill(req.json()["task_id"]) else 404, {})
        if p == "/standin/shutdown" and req.method == "POST":
            master = self.master or {}
            threading.Thread(target=self.shutdown, daemon=True, args=(
                master.get("pid", ""), req.json().get("message", ""))).start()
            return Response(200, {})
        return Response(404, "", content_type=None)

    def _read_file(self, query):
        path = os.path.realpath(query.get("path", [""])[0])
        if not path.startswith(self.work_dir + os.sep) or not os.path.isfile(path):
            return Response(404, "", content_type=None)
        offset = int(query.get("offset", ["0"])[0])
        with open(path, "rb") as f:
            f.seek(offset)
            data = f.read(int(query.get("length", ["-1"])[0]))
        return Response(200, {"data": data.decode(errors="replace"), "offset": offset})


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _signal_group(pid, sig):
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _incompatible(old, new, work_dir):
    line = "-" * 60
    show = lambda info: "\n".join(f"{k}: {info.get(k)}" for k in new)  # noqa: E731
    return (f"EXIT with status 1: Failed to perform recovery: Incompatible agent info detected."
            f"\n{line}\nOld agent info:\n{show(old)}\n{line}\nNew agent info:\n{show(new)}\n"
            f"{line}\nTo remedy this do as follows:\n"
            f"Step 1: rm -f {work_dir}/meta/slaves/latest\n"
            f"        This ensures agent doesn't recover old live executors.\n"
            f"Step 2: Restart the agent.")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        flags = load_flags(argv)
    except (flagslib.FlagError, OSError) as e:
        flagslib.fail(PROG, str(e))
    if flags["help"] or flags["version"]:
        print(f"mesos {VERSION}" if flags["version"] else f"Usage: {PROG} [options]")
        return 0
    common.setup_logging(PROG, flags["log_dir"])
    agent = Agent(flags)
    agent.recover()  # raises SystemExit with the real text on incompatible agent info
    try:
        server = common.serve(agent.ip, agent.port, agent.handle, "mesos-slave")
    except OSError as e:
        log.critical("Failed to initialize: Failed to bind on %s:%s: %s", agent.ip, agent.port, e)
        return 1
    log.info("Agent started on %s:%s with resources %s", agent.ip, agent.port,
             common.resources_text(agent.resources))
    detector = zklib.MasterDetector(flags["master"])
    threading.Thread(target=agent.loop, args=(detector,), daemon=True).start()
    threading.Thread(target=agent.flusher, daemon=True).start()
    common.wait_for_sigterm(agent.shut_down)
    if agent.shut_down.is_set():
        server.shutdown()
        detector.stop()
        return 0
    agent.stopping = True
    log.info("Received SIGTERM; exiting (tasks keep running, as with KillMode=process)")
    if agent.master and agent.id:
        try:
            common.call("POST", detector.url(agent.master) + "/standin/agent_exited",
                        {"agent_id": agent.id}, timeout=2)
        except OSError:
            pass
    server.shutdown()
    detector.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
