"""Stand-in for `/usr/sbin/mesos-master` (Mesos 1.4): TEST EQUIPMENT, not Mesos.

What it keeps from the real master, because the project's tasks and runbooks depend on it:
- flags: same names, same fatal errors (unknown, repeated, missing --quorum/--work_dir, bad zk URL);
- leader election in ZooKeeper: ephemeral sequential `<path>/json.info_N` with MasterInfo JSON,
  lowest sequence leads; one ephemeral `<path>/log_replicas/replica_N` per master stands for its
  replicated-log replica;
- quorum: every master's log replica recovers (`registrar/log/recovered` 1) once `--quorum`
  replicas are up, without a deadline; an elected master's registrar recovers only then, else it
  exits with the real "Recovery failed" text after --registry_fetch_timeout (systemd's
  Restart=always restarts it);
- losing the ZooKeeper session while elected makes it exit ("committing suicide"), as the real one;
- HTTP: /master/state (+ /state), 307 from non-leaders, /master/redirect, /master/health,
  /metrics/snapshot, with the real field names.
What it drops: offers, the allocator, authentication, a persisted registry (agents simply
re-register with each new leader, as they do after a real failover).
Agents and frameworks talk to it through `/standin/*` (test equipment only).
"""
import collections
import json
import logging
import os
import socket
import struct
import sys
import threading
import time
import uuid

from . import common, flags as flagslib, zk as zklib
from .common import Response

log = logging.getLogger("mesos-master")
PROG = "mesos-master"
VERSION = common.version("mesos", "1.4.1")
TERMINAL = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR",
            "TASK_DROPPED", "TASK_GONE"}
AGENT_INACTIVE_AFTER = 10.0     # seconds without a heartbeat: the agent counts as disconnected
AGENT_REMOVED_AFTER = 75.0      # agent_ping_timeout (15secs) x max_agent_ping_timeouts (5)
FRAMEWORK_INACTIVE_AFTER = 15.0

# Mesos 1.4 master flags (a flag not listed here is unknown, hence fatal, as in Mesos).
_S, _I, _F, _B, _D = str, int, float, bool, "duration"
SPEC = {
    "acls": (_S, None), "advertise_ip": (_S, None), "advertise_port": (_I, None),
    "agent_ping_timeout": (_D, 15.0), "agent_removal_rate_limit": (_S, None),
    "agent_reregister_timeout": (_D, 600.0), "allocation_interval": (_D, 1.0),
    "allocator": (_S, "HierarchicalDRF"), "authenticate_agents": (_B, False),
    "authenticate_frameworks": (_B, False), "authenticate_http_frameworks": (_B, False),
    "authenticate_http_readonly": (_B, False), "authenticate_http_readwrite": (_B, False),
    "authenticators": (_S, "crammd5"), "authorizers": (_S, "local"), "cluster": (_S, None),
    "credentials": (_S, None), "external_log_file": (_S, None), "filter_gpu_resources": (_B, True),
    "firewall_rules": (_S, None), "framework_sorter": (_S, "drf"), "help": (_B, False),
    "hooks": (_S, None), "hostname": (_S, None), "hostname_lookup": (_B, True),
    "http_authenticators": (_S, None), "http_framework_authenticators": (_S, None),
    "initialize_driver_logging": (_B, True), "ip": (_S, None), "ip_discovery_command": (_S, None),
    "log_auto_initialize": (_B, True), "log_dir": (_S, None), "logbufsecs": (_I, 0),
    "logging_level": (_S, "INFO"), "max_agent_ping_timeouts": (_I, 5),
    "max_completed_frameworks": (_I, 50), "max_completed_tasks_per_framework": (_I, 1000),
    "max_unreachable_tasks_per_framework": (_I, 1000), "modules": (_S, None),
    "modules_dir": (_S, None), "offer_timeout": (_D, None), "port": (_I, 5050),
    "quiet": (_B, False), "quorum": (_I, None), "rate_limits": (_S, None),
    "recovery_agent_removal_limit": (_S, "100%"), "registry": (_S, "replicated_log"),
    "registry_fetch_timeout": (_D, 60.0), "registry_gc_interval": (_D, 900.0),
    "registry_max_agent_age": (_D, 1209600.0), "registry_max_agent_count": (_I, 102400),
    "registry_store_timeout": (_D, 20.0), "registry_strict": (_B, False), "roles": (_S, None),
    "root_submissions": (_B, True), "user_sorter": (_S, "drf"), "version": (_B, False),
    "webui_dir": (_S, "/usr/share/mesos/webui"), "weights": (_S, None), "whitelist": (_S, None),
    "work_dir": (_S, None), "zk": (_S, None), "zk_session_timeout": (_D, 10.0),
    # Pre-1.0 names still accepted by 1.4.
    "slave_ping_timeout": (_D, None), "max_slave_ping_timeouts": (_I, None),
    "slave_removal_rate_limit": (_S, None), "slave_reregister_timeout": (_D, None),
}


def load_flags(argv, environ=None):
    """Parse and validate like master/main.cpp; raises FlagError with the real text."""
    f = flagslib.parse_mesos(argv, SPEC, environ)
    if f["help"] or f["version"]:
        return f
    zk = f["zk"]
    if zk and zk.startswith("file://"):  # Mesos reads the URL from the file
        with open(zk[len("file://"):]) as fh:
            zk = f["zk"] = fh.read().strip()
    if f["registry"] == "replicated_log":
        if not f["work_dir"]:
            raise flagslib.FlagError("--work_dir needed for replicated log based registry")
        if zk and f["quorum"] is None:
            raise flagslib.FlagError("Need to specify --quorum for replicated log based"
                                     " registry when using ZooKeeper")
    if zk:
        try:
            zklib.parse_zk_url(zk)
        except zklib.ZkUrlError as e:
            raise flagslib.FlagError(f"Error parsing ZooKeeper URL: {e}") from None
    f["quorum"] = 1 if f["quorum"] is None else f["quorum"]
    return f


def _ip_as_uint32(ip):
    # MasterInfo.ip is the address in network byte order read as a host integer.
    return struct.unpack("<I", socket.inet_aton(ip))[0]


class Master:
    def __init__(self, flags):
        self.flags = flags
        self.ip = flags["ip"] or "127.0.0.1"
        self.port = flags["port"]
        self.hostname = flags["hostname"] or self.ip
        self.id = str(uuid.uuid4())
        self.pid = f"master@{self.ip}:{self.port}"
        self.info = {
            "id": self.id, "pid": self.pid, "port": self.port, "hostname": self.hostname,
            "ip": _ip_as_uint32(self.ip), "version": VERSION,
            "address": {"ip": self.ip, "port": self.port, "hostname": self.hostname},
        }
        self.lock = threading.RLock()
        self.leader = None          # MasterInfo of the leader (self.info when elected)
        self.elected_time = None
        self.recovered = False      # the registrar (leader only)
        self.log_recovered = False  # this master's replica of the replicated log
        self.start_time = time.time()
        self.agents = {}            # id -> agent dict
        self.frameworks = {}        # id -> framework dict (tasks, completed_tasks)
        self.next_agent = 0
        self.next_framework = 0
        self.zk = None
        self.znode = None
        self.stopping = False

    # ---- ZooKeeper: contending, electing, recovering -------------------------------------
    def start_zk(self):
        hosts, self.zk_path = zklib.parse_zk_url(self.flags["zk"])
        self.zk = zklib.client(hosts, self.flags["zk_session_timeout"])
        self.zk.add_listener(self._on_zk_state)
        self._contend()
        self.zk.ChildrenWatch(self.zk_path, self._on_masters)

    def _contend(self):
        zk, path = self.zk, self.zk_path
        zk.ensure_path(f"{path}/log_replicas")
        zk.create(f"{path}/log_replicas/replica_", f"{self.ip}:{self.port}".encode(),
                  ephemeral=True, sequence=True)
        self.znode = zk.create(f"{path}/{zklib.MASTER_PREFIX}", json.dumps(self.info).encode(),
                               ephemeral=True, sequence=True)
        log.info("Created ZooKeeper node %s", self.znode)

    def _on_zk_state(self, state):
        if self.stopping:
            return
        if state == "LOST":
            if self.elected_time:
                log.critical("Lost leadership... committing suicide!")
                os._exit(1)
            self.znode = None  # the main loop contends again once reconnected
        elif state == "SUSPENDED":
            log.warning("Lost connection to ZooKeeper, retrying")

    def _on_masters(self, children):
        masters = zklib.mesos_masters(self.zk, self.zk_path)
        leader = masters[0][1] if masters else None
        if self.stopping:
            return False
        was_elected = bool(self.elected_time)
        with self.lock:
            self.leader = leader
        if leader and leader["id"] == self.id and not was_elected:
            self._elected()
        elif was_elected and (not leader or leader["id"] != self.id):
            log.critical("Lost leadership... committing suicide!")
            os._exit(1)
        elif leader and leader["id"] != self.id:
            log.info("The newly elected leader is %s with id %s", leader["pid"], leader["id"])
        return True

    def _elected(self):
        log.info("Elected as the leading master!")
        self.elected_time = time.time()
        threading.Thread(target=self._recover, daemon=True).start()

    def _quorum_of_replicas(self):
        replicas = 1 if self.zk is None else len(
            self.zk.get_children(f"{self.zk_path}/log_replicas"))
        return replicas >= self.flags["quorum"]

    def _recover(self):
        """Wait for a quorum of log replicas, as the registrar's first fetch does."""
        timeout = self.flags["registry_fetch_timeout"]
        deadline = time.time() + timeout
        while True:
            if self._quorum_of_replicas():
                break
            if time.time() >= deadline:
                log.critical("Recovery failed: Failed to recover registrar: Failed to perform "
                             "fetch within %s", flagslib.format_duration(timeout))
                os._exit(1)
            time.sleep(0.5)
        with self.lock:
            self.log_recovered = self.recovered = True  # the registrar reads through the log
        log.info("Recovered 0 agents from the registry; allowing %s for agents to reregister",
                 flagslib.format_duration(self.flags["agent_reregister_timeout"]))

    def run_standalone(self):
        """No --zk: this master is the leader (Mesos' standalone detector)."""
        self.leader = self.info
        self._elected()

    def tick(self):
        """Once a second: contend again after a lost session; recover this master's log
        replica; age out silent agents."""
        if self.zk is not None and self.znode is None and self.zk.connected:
            self._contend()
            # Re-read the candidates now rather than trust the old watch to fire after a
            # session change: a stale leader would send agents and redirects astray.
            self._on_masters(self.zk.get_children(self.zk_path))
        # Mesos' log process starts recovering its replica when it is created, elected or
        # not, and retries until a quorum of replicas answers.
        if not self.log_recovered and self._quorum_of_replicas():
            self.log_recovered = True
        now = time.time()
        with self.lock:
            for agent in list(self.agents.values()):
                silent = now - agent["last_seen"]
                if silent > AGENT_REMOVED_AFTER:
                    self._remove_agent(agent, "TASK_LOST")
                elif silent > AGENT_INACTIVE_AFTER:
                    agent["active"] = False
            for fw in self.frameworks.values():
                if now - fw["last_seen"] > FRAMEWORK_INACTIVE_AFTER:
                    fw["active"] = False

    # ---- state -----------------------------------------------------------------------
    def is_leader(self):
        return self.leader is not None and self.leader["id"] == self.id

    def _framework(self, fid, name="", **info):
        fw = self.frameworks.get(fid)
        if fw is None:
            fw = self.frameworks[fid] = {
                "id": fid, "name": name, "hostname": "", "user": "root", "webui_url": "",
                "failover_timeout": 0, "active": False, "registered_time": time.time(),
                "last_seen": 0.0, "tasks": {},
                "completed_tasks": collections.deque(
                    maxlen=self.flags["max_completed_tasks_per_framework"]),
            }
        fw.update({k: v for k, v in info.items() if v is not None})
        if name:
            fw["name"] = name
        return fw

    def _used(self, agent_id):
        used = {"cpus": 0.0, "mem": 0.0, "disk": 0.0, "gpus": 0.0}
        ports = set()
        for fw in self.frameworks.values():
            for t in fw["tasks"].values():
                if t["slave_id"] == agent_id:
                    for k in ("cpus", "mem", "disk"):
                        used[k] += t["resources"].get(k, 0.0)
                    for lo, hi in common.parse_ranges(t["resources"].get("ports", "")):
                        ports.update(range(lo, hi + 1))
        if ports:
            used["ports"] = common.ranges_text(ports)
        return used

    def _set_task_state(self, fw, task_id, state, message=""):
        task = fw["tasks"].get(task_id)
        if task is None:
            return
        task["state"] = state
        task["statuses"].append({"state": state, "timestamp": time.time(), "message": message})
        if state in TERMINAL:
            fw["completed_tasks"].append(fw["tasks"].pop(task_id))

    def _remove_agent(self, agent, state):
        log.warning("Removing agent %s at %s: not heard from in %ss",
                    agent["id"], agent["pid"], AGENT_REMOVED_AFTER)
        for fw in self.frameworks.values():
            for tid, t in list(fw["tasks"].items()):
                if t["slave_id"] == agent["id"]:
                    self._set_task_state(fw, tid, state, "Agent removed")
        del self.agents[agent["id"]]

    def state(self):
        with self.lock:
            slaves = []
            for a in self.agents.values():
                s = {k: a[k] for k in ("id", "hostname", "port", "pid", "attributes",
                                       "active", "registered_time", "version")}
                s.update(resources=dict(a["resources"]), used_resources=self._used(a["id"]),
                         offered_resources={"cpus": 0.0, "mem": 0.0, "disk": 0.0, "gpus": 0.0},
                         unreserved_resources=dict(a["resources"]))
                if a.get("reregistered_time"):
                    s["reregistered_time"] = a["reregistered_time"]
                slaves.append(s)
            frameworks = []
            for fw in self.frameworks.values():
                f = {k: v for k, v in fw.items() if k not in ("last_seen", "tasks",
                                                              "completed_tasks")}
                f["tasks"] = [dict(t) for t in fw["tasks"].values()]
                f["completed_tasks"] = [dict(t) for t in fw["completed_tasks"]]
                f["used_resources"] = {"cpus": sum(t["resources"].get("cpus", 0)
                                                   for t in fw["tasks"].values())}
                frameworks.append(f)
            st = {
                "version": VERSION, "id": self.id, "pid": self.pid, "hostname": self.hostname,
                "start_time": self.start_time,
                "activated_slaves": sum(1 for a in self.agents.values() if a["active"]),
                "deactivated_slaves": sum(1 for a in self.agents.values() if not a["active"]),
                "unreachable_slaves": 0, "cluster": self.flags["cluster"] or "",
                "flags": flagslib.to_json(self.flags, SPEC), "slaves": slaves,
                "frameworks": [f for f in frameworks if f["active"] or f["tasks"]],
                "completed_frameworks": [], "orphan_tasks": [], "unregistered_frameworks": [],
                "log_dir": self.flags["log_dir"] or "",
            }
            if self.leader:
                st["leader"] = self.leader["pid"]
                st["leader_info"] = {k: self.leader[k] for k in ("id", "pid", "port",
                                                                 "hostname")}
            if self.is_leader():
                st["elected_time"] = self.elected_time
            return st

    def metrics(self):
        with self.lock:
            tasks = [t for fw in self.frameworks.values() for t in fw["tasks"].values()]
            done = [t for fw in self.frameworks.values() for t in fw["completed_tasks"]]

            def count(ts, state):
                return float(sum(1 for t in ts if t["state"] == state))

            active = sum(1 for a in self.agents.values() if a["active"])
            return {
                "master/elected": 1.0 if self.is_leader() else 0.0,
                "master/uptime_secs": time.time() - self.start_time,
                "master/slaves_active": float(active),
                "master/slaves_inactive": float(len(self.agents) - active),
                "master/slaves_connected": float(active),
                "master/slaves_disconnected": float(len(self.agents) - active),
                "master/frameworks_active": float(sum(
                    1 for f in self.frameworks.values() if f["active"])),
                "master/tasks_staging": count(tasks, "TASK_STAGING"),
                "master/tasks_running": count(tasks, "TASK_RUNNING"),
                "master/tasks_finished": count(done, "TASK_FINISHED"),
                "master/tasks_failed": count(done, "TASK_FAILED"),
                "master/tasks_killed": count(done, "TASK_KILLED"),
                "master/tasks_lost": count(done, "TASK_LOST"),
                "registrar/log/recovered": 1.0 if self.log_recovered else 0.0,
                "registrar/log/ensemble_size": float(self.flags["quorum"] * 2 - 1),
            }

    # ---- HTTP ------------------------------------------------------------------------
    def _redirect(self, path):
        if self.leader is None:
            return Response(503, "No leader elected", content_type="text/plain")
        leader = self.leader
        return Response(307, headers={"Location": f"//{leader['hostname']}:{leader['port']}"
                                                  f"{path}"})

    def handle(self, req):
        p = req.path.rstrip("/") or "/"
        if p in ("/master/health", "/health"):
            return Response(200)
        if p == "/metrics/snapshot":
            return Response(200, self.metrics())
        if p in ("/master/redirect", "/redirect"):
            return self._redirect("")
        if p in ("/master/state", "/state", "/master/state.json", "/state.json"):
            if not self.is_leader():
                return self._redirect("/master/state")
            return Response(200, self.state())
        if p in ("/master/slaves", "/slaves"):
            if not self.is_leader():
                return self._redirect("/master/slaves")
            return Response(200, {"slaves": self.state()["slaves"]})
        if p == "/version":
            return Response(200, {"version": VERSION, "build_user": "standin"})
        if p == "/":
            return Response(200, _INDEX.format(pid=self.pid, version=VERSION),
                            content_type="text/html")
        if p.startswith("/standin/") and req.method == "POST":
            if not self.is_leader():
                return self._redirect(p)
            if not self.recovered:
                return Response(503, {"message": "Master is not recovered yet"})
            with self.lock:
                return getattr(self, "_" + p[len("/standin/"):], self._not_found)(req.json())
        return Response(404, "", content_type=None)

    def _not_found(self, body):
        return Response(404, {"message": "no such stand-in endpoint"})

    # ---- /standin/* (test equipment only: replaces libprocess messages) ----------------
    def _register_agent(self, body):
        """Registration, re-registration and heartbeat of an agent (idempotent)."""
        now = time.time()
        aid = body.get("agent_id")
        agent = self.agents.get(aid) if aid else None
        if agent is None:
            if not aid:
                aid = f"{self.id}-S{self.next_agent}"
                self.next_agent += 1
                log.info("Registered agent %s at %s", aid, body["pid"])
            else:
                log.info("Re-registered agent %s at %s", aid, body["pid"])
            agent = self.agents[aid] = {"id": aid, "registered_time": now,
                                        "reregistered_time": now if body.get("agent_id") else None}
            for t in body.get("tasks", []):  # a re-registering agent reports its live tasks
                fw = self._framework(t["framework_id"], t.pop("framework_name", ""))
                fw["tasks"][t["id"]] = t
        agent.update(hostname=body["hostname"], port=body["port"], pid=body["pid"],
                     ip=body["ip"], resources=body["resources"],
                     attributes=body.get("attributes", {}), version=VERSION,
                     active=True, last_seen=now)
        return Response(200, {"agent_id": aid, "master_id": self.id})

    def _agent_exited(self, body):
        agent = self.agents.get(body.get("agent_id"))
        if agent:
            log.info("Agent %s disconnected", agent["id"])
            agent["active"] = False
            agent["last_seen"] = min(agent["last_seen"], time.time() - AGENT_INACTIVE_AFTER)
        return Response(200, {})

    def _register_framework(self, body):
        fid = body.get("framework_id")
        if not fid:
            fid = f"{self.id}-{self.next_framework:04d}"
            self.next_framework += 1
            log.info("Registered framework %s (%s)", fid, body.get("name"))
        fw = self._framework(fid, body.get("name", ""), hostname=body.get("hostname"),
                             webui_url=body.get("webui_url"),
                             failover_timeout=body.get("failover_timeout"))
        if not fw["active"]:
            log.info("Framework %s (%s) is active", fid, fw["name"])
        fw.update(active=True, last_seen=time.time())
        return Response(200, {"framework_id": fid, "master_id": self.id})

    def _launch(self, body):
        fw = self.frameworks.get(body["framework_id"])
        agent = self.agents.get(body["agent_id"])
        task = body["task"]
        if fw is None or not fw["active"]:
            return Response(409, {"message": "Framework is not registered"})
        if agent is None or not agent["active"]:
            return Response(409, {"message": "Agent is not active"})
        used = self._used(agent["id"])
        for k in ("cpus", "mem", "disk"):
            if task["resources"].get(k, 0) > agent["resources"].get(k, 0) - used[k] + 1e-9:
                return Response(409, {"message": f"Insufficient {k} on agent {agent['id']}"})
        t = {"id": task["task_id"], "name": task["name"], "framework_id": fw["id"],
             "executor_id": "", "slave_id": agent["id"], "state": "TASK_STAGING",
             "resources": task["resources"], "labels": task.get("labels", []),
             "statuses": [], "discovery": task.get("discovery")}
        fw["tasks"][t["id"]] = t
        payload = {"framework": {"id": fw["id"], "name": fw["name"]}, "task": task}
        try:
            status, reply, _ = common.call("POST", f"http://{agent['ip']}:{agent['port']}"
                                                   "/standin/launch", payload)
        except OSError as e:
            status, reply = 0, str(e)
        if status != 200:
            self._set_task_state(fw, t["id"], "TASK_LOST", f"Agent unreachable: {reply}")
            return Response(409, {"message": f"Launch failed: {reply}"})
        return Response(200, {"task_id": t["id"]})

    def _kill(self, body):
        for fw in self.frameworks.values():
            task = fw["tasks"].get(body["task_id"])
            if task:
                agent = self.agents.get(task["slave_id"])
                if agent:
                    try:
                        common.call("POST", f"http://{agent['ip']}:{agent['port']}"
                                            "/standin/kill", body)
                    except OSError as e:
                        log.warning("Could not reach agent %s to kill: %s", agent["id"], e)
                return Response(200, {})
        return Response(404, {"message": "Unknown task"})

    def _status_update(self, body):
        fw = self.frameworks.get(body["framework_id"])
        if fw is None:
            fw = self._framework(body["framework_id"], body.get("framework_name", ""))
        if body["task_id"] not in fw["tasks"] and "task" in body:
            fw["tasks"][body["task_id"]] = body["task"]
        self._set_task_state(fw, body["task_id"], body["state"], body.get("message", ""))
        return Response(200, {})


_INDEX = """<!DOCTYPE html><html><head><title>Mesos</title></head><body>
<h1>Mesos {version} (test stand-in)</h1><p>{pid}</p>
<p>See <a href="/master/state">/master/state</a>.</p></body></html>"""


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        flags = load_flags(argv)
    except (flagslib.FlagError, OSError) as e:
        flagslib.fail(PROG, str(e))
    if flags["help"]:
        print(f"Usage: {PROG} [options]\n(test stand-in; flags as Mesos {VERSION})")
        return 0
    if flags["version"]:
        print(f"mesos {VERSION}")
        return 0
    common.setup_logging(PROG, flags["log_dir"])
    master = Master(flags)
    os.makedirs(flags["work_dir"] or ".", exist_ok=True)
    try:
        server = common.serve(master.ip, master.port, master.handle, "mesos-master")
    except OSError as e:
        log.critical("Failed to initialize: Failed to bind on %s:%s: %s",
                     master.ip, master.port, e)
        return 1
    log.info("Master %s (%s) started on %s:%s", master.id, master.hostname,
             master.ip, master.port)
    if flags["zk"]:
        master.start_zk()
    else:
        master.run_standalone()
    ticker = threading.Thread(target=_tick_forever, args=(master,), daemon=True)
    ticker.start()
    common.wait_for_sigterm()
    log.info("Received SIGTERM; exiting")
    server.shutdown()
    master.stopping = True
    if master.zk is not None:
        master.zk.stop()  # drops our ephemeral znodes at once: a fast re-election
    return 0


def _tick_forever(master):
    while True:
        time.sleep(1)
        try:
            master.tick()
        except Exception:
            log.exception("tick failed")


if __name__ == "__main__":
    sys.exit(main())
