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
  /metrics/snapshot, with the real field names;
- an agent re-registering (after a master failover, its own restart, a new ZooKeeper URL)
  reports its tasks: the master takes their latest state, and a task it has on that agent which
  the agent does not know becomes TASK_DROPPED (REASON_RECONCILIATION), as real reconciliation
  through the agent ends; an agent silent for 75 s is unreachable (TASK_UNREACHABLE for
  partition-aware frameworks such as Marathon, TASK_LOST for others);
- maintenance (see maintenance.py): /master/maintenance/schedule (GET, POST replaces it),
  /master/machine/down (the machine's agents are told to shut down and removed: their tasks
  become TASK_LOST, REASON_SLAVE_REMOVED), /master/machine/up, /master/maintenance/status, each
  also without the /master prefix; an agent on a DOWN machine is refused ("Machine is `DOWN`")
  and shuts down. The schedule and the DOWN machines survive a failover, as in the real
  registry: the leader keeps them in the znode `<zk path>/standin_registry`.
- framework authentication: `--credentials` read as the real master reads it (JSON, or the
  deprecated `principal secret` lines; the same fatal errors), and with
  `--authenticate_frameworks` a framework that did not authenticate is refused ("Framework at
  ... is not authenticated"); authentication is a challenge and an HMAC-MD5 of it keyed with
  the secret, as CRAM-MD5 (`/standin/authenticate`), so the secret never travels.
What it drops: offers, the allocator, agent and HTTP authentication, the registry's agent list (agents simply
re-register with each new leader, as they do after a real failover).
Agents and frameworks talk to it through `/standin/*` (test equipment only); status updates
for a framework queue up until it fetches them (`/standin/updates`), as acknowledged updates.
"""
import collections
import hashlib
import hmac
import json
import logging
import os
import socket
import struct
import sys
import threading
import time
import urllib.parse
import uuid

from kazoo.exceptions import NoNodeError

from . import common, flags as flagslib, maintenance, zk as zklib
from .common import Response

log = logging.getLogger("mesos-master")
PROG = "mesos-master"
VERSION = common.version("mesos", "1.4.1")
TERMINAL = {"TASK_FINISHED", "TASK_FAILED", "TASK_KILLED", "TASK_LOST", "TASK_ERROR",
            "TASK_DROPPED", "TASK_GONE"}
AGENT_INACTIVE_AFTER = 10.0     # seconds without a heartbeat: the agent counts as disconnected
AGENT_REMOVED_AFTER = 75.0      # agent_ping_timeout (15secs) x max_agent_ping_timeouts (5)
FRAMEWORK_INACTIVE_AFTER = 15.0
MAX_PENDING_UPDATES = 1000    # per framework, oldest dropped first
REGISTRY_ZNODE = "standin_registry"  # the maintenance part of the registry (see docstring)

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


def load_credentials(path):
    """principal -> secret from `--credentials` (credentials.hpp of Mesos 1.4): JSON
    {"credentials": [{"principal", "secret"}]}, else `principal secret` lines."""
    path = path[len("file://"):] if path.startswith("file://") else path
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as e:
        raise flagslib.FlagError(f"Failed to read credentials file '{path}': {e.strerror} "
                                 "(see --credentials flag)") from None
    if not text:
        raise flagslib.FlagError("Credentials file must contain at least one credential "
                                 "(see --credentials flag)")
    if os.stat(path).st_mode & 0o007:
        log.warning("Permissions on credentials file '%s' are too open; it is recommended "
                    "that your credentials file is NOT accessible by others", path)
    try:
        parsed = json.loads(text)
        return {c["principal"]: c.get("secret", "") for c in parsed["credentials"]}
    except (ValueError, KeyError, TypeError):
        pass
    credentials = {}
    for line in text.split("\n"):
        if not line:
            continue
        pair = line.split()
        if len(pair) != 2:
            raise flagslib.FlagError(f"Invalid credential format at line "
                                     f"{len(credentials) + 1} (see --credentials flag)")
        credentials[pair[0]] = pair[1]
    return credentials


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
        self.credentials = load_credentials(flags["credentials"]) if flags["credentials"] else {}
        self.challenges = {}        # scheduler pid -> (principal, challenge) being answered
        self.authenticated = {}     # scheduler pid -> its principal
        self.leader = None          # MasterInfo of the leader (self.info when elected)
        self.elected_time = None
        self.recovered = False      # the registrar (leader only)
        self.log_recovered = False  # this master's replica of the replicated log
        self.start_time = time.time()
        self.agents = {}            # id -> agent dict
        self.frameworks = {}        # id -> framework dict (tasks, completed_tasks, updates)
        self.schedule = {}          # the maintenance schedule, as last accepted
        self.down = {}              # machine key -> MachineID of each machine in DOWN mode
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
        """Wait for a quorum of log replicas, as the registrar's first fetch does; then read
        the maintenance state the previous leaders kept."""
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
        registry = self._read_registry()
        with self.lock:
            self.schedule = registry.get("schedule", {})
            self.down = {maintenance.key(m): m for m in registry.get("down", [])}
            self.log_recovered = self.recovered = True  # the registrar reads through the log
        log.info("Recovered 0 agents from the registry; allowing %s for agents to reregister",
                 flagslib.format_duration(self.flags["agent_reregister_timeout"]))

    def _registry_node(self):
        return f"{self.zk_path}/{REGISTRY_ZNODE}"

    def _read_registry(self):
        if self.zk is None:
            return {}
        try:
            return json.loads(self.zk.get(self._registry_node())[0].decode() or "{}")
        except NoNodeError:
            return {}

    def _store_registry(self):
        """What the real registrar keeps in the replicated log about maintenance."""
        if self.zk is None:
            return
        data = json.dumps({"schedule": self.schedule,
                           "down": list(self.down.values())}).encode()
        try:
            self.zk.set(self._registry_node(), data)
        except NoNodeError:
            self.zk.create(self._registry_node(), data)

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
                    self._remove_agent(agent, f"Agent {agent['hostname']} is unreachable: "
                                              "health check timed out", unreachable=True)
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
                "failover_timeout": 0, "capabilities": [], "active": False,
                "registered_time": time.time(), "last_seen": 0.0, "tasks": {},
                "unreachable_tasks": {}, "updates": [],
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

    def _set_task_state(self, fw, task_id, state, message="", reason=None,
                        source="SOURCE_AGENT"):
        """Record a task's new state and queue the status update for its framework."""
        task = fw["tasks"].get(task_id) or fw["unreachable_tasks"].get(task_id)
        if task is None:
            return
        now = time.time()
        task["state"] = state
        task["statuses"].append({"state": state, "timestamp": now})
        fw["updates"] = fw["updates"][-(MAX_PENDING_UPDATES - 1):] + [{
            "task_id": task_id, "agent_id": task["slave_id"], "state": state,
            "message": message, "reason": reason, "source": source, "timestamp": now}]
        if state in TERMINAL or state == "TASK_UNREACHABLE":
            fw["tasks"].pop(task_id, None)
            if state == "TASK_UNREACHABLE":
                fw["unreachable_tasks"][task_id] = task
            else:
                fw["unreachable_tasks"].pop(task_id, None)
                fw["completed_tasks"].append(task)

    def _remove_agent(self, agent, message, unreachable=False):
        """Unreachable (health checks): TASK_UNREACHABLE for partition-aware frameworks, else
        TASK_LOST; removed (Machine DOWN): TASK_LOST. Both with REASON_SLAVE_REMOVED."""
        log.warning("Removing agent %s at %s: %s", agent["id"], agent["pid"], message)
        for fw in self.frameworks.values():
            aware = unreachable and {"type": "PARTITION_AWARE"} in fw["capabilities"]
            for tid, t in list(fw["tasks"].items()):
                if t["slave_id"] == agent["id"]:
                    self._set_task_state(fw, tid, "TASK_UNREACHABLE" if aware else "TASK_LOST",
                                         message, "REASON_SLAVE_REMOVED", "SOURCE_MASTER")
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
                f = {k: v for k, v in fw.items() if k not in (
                    "last_seen", "tasks", "completed_tasks", "unreachable_tasks", "updates")}
                for key in ("tasks", "unreachable_tasks", "completed_tasks"):
                    tasks = fw[key].values() if isinstance(fw[key], dict) else fw[key]
                    f[key] = [dict(t) for t in tasks]
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
                "master/tasks_unreachable": float(sum(
                    len(f["unreachable_tasks"]) for f in self.frameworks.values())),
                "master/tasks_finished": count(done, "TASK_FINISHED"),
                "master/tasks_failed": count(done, "TASK_FAILED"),
                "master/tasks_killed": count(done, "TASK_KILLED"),
                "master/tasks_lost": count(done, "TASK_LOST"),
                "master/tasks_dropped": count(done, "TASK_DROPPED"),
                "registrar/log/recovered": 1.0 if self.log_recovered else 0.0,
                "registrar/log/ensemble_size": float(self.flags["quorum"] * 2 - 1),
            }

    # ---- HTTP ------------------------------------------------------------------------
    def _redirect(self, req):
        """307 to the same path on the leader (http.cpp's redirect), 503 without one."""
        if self.leader is None:
            return Response(503, "No leader elected", content_type="text/plain")
        base = f"//{self.leader['hostname']}:{self.leader['port']}"
        if req.path.rstrip("/") in ("/redirect", "/master/redirect"):
            return Response(307, headers={"Location": base})
        query = urllib.parse.urlencode(req.query, doseq=True)
        return Response(307, headers={"Location": base + req.path + (f"?{query}" if query
                                                                     else "")})

    def handle(self, req):
        p = req.path.rstrip("/") or "/"
        # libprocess delegates "/x" to the master process: "/state" is "/master/state".
        name = p[len("/master"):] if p.startswith("/master/") else p
        if name == "/health":
            return Response(200)
        if p == "/metrics/snapshot":
            return Response(200, self.metrics())
        if name == "/redirect":
            return self._redirect(req)
        if name in ("/state", "/state.json", "/slaves") or name in _MAINTENANCE:
            if not self.is_leader():
                return self._redirect(req)
            if name in _MAINTENANCE:
                return self._maintenance(req, name)
            state = self.state()
            return Response(200, {"slaves": state["slaves"]} if name == "/slaves" else state)
        if p == "/version":
            return Response(200, {"version": VERSION, "build_user": "standin"})
        if p == "/":
            return Response(200, _INDEX.format(pid=self.pid, version=VERSION),
                            content_type="text/html")
        if p.startswith("/standin/") and req.method == "POST":
            if not self.is_leader():
                return self._redirect(req)
            if not self.recovered:
                return Response(503, {"message": "Master is not recovered yet"})
            with self.lock:
                return getattr(self, "_" + p[len("/standin/"):], self._not_found)(req.json())
        return Response(404, "", content_type=None)

    def _not_found(self, body):
        return Response(404, {"message": "no such stand-in endpoint"})

    def _send(self, agent, path, payload):
        """A message to an agent: sent in the background, never under the lock, like a
        libprocess send. Returns the thread (tests and shutdown paths may join it)."""
        url = f"http://{agent['ip']}:{agent['port']}{path}"

        def send():
            try:
                status, reply, _ = common.call("POST", url, payload)
            except OSError as e:
                status, reply = 0, str(e)
            if status != 200 and path == "/standin/launch":
                with self.lock:
                    fw = self.frameworks.get(payload["framework"]["id"])
                    if fw is not None:
                        self._set_task_state(fw, payload["task"]["task_id"], "TASK_DROPPED",
                                             f"Agent unreachable: {reply}",
                                             "REASON_SLAVE_DISCONNECTED", "SOURCE_MASTER")
            elif status != 200:
                log.warning("Could not send %s to agent %s: %s", path, agent["id"], reply)

        thread = threading.Thread(target=send, daemon=True)
        thread.start()
        return thread

    # ---- maintenance (master/http.cpp, master/maintenance.cpp) --------------------------
    def _maintenance(self, req, name):
        allowed = _MAINTENANCE[name]
        if req.method not in allowed:
            return Response(405, "Expecting one of { '" + "', '".join(allowed) +
                            f"' }}, but received '{req.method}'",
                            headers={"Allow": ", ".join(allowed)}, content_type="text/plain")
        with self.lock:
            try:
                if name == "/maintenance/schedule":
                    if req.method == "GET":
                        return Response(200, self.schedule)
                    return self._update_schedule(maintenance.parse_schedule(req.body))
                if name == "/maintenance/status":
                    return Response(200, self._maintenance_status())
                ids = maintenance.parse_machine_ids(req.body)
                maintenance.validate_machines(ids)
                return self._machines_down(ids) if name == "/machine/down" else \
                    self._machines_up(ids)
            except maintenance.MaintenanceError as e:
                return Response(400, str(e), content_type="text/plain")

    def _update_schedule(self, schedule):
        maintenance.validate_schedule(schedule, self.down)
        self.schedule = schedule if schedule.get("windows") else {}
        self._store_registry()
        log.info("Updated the maintenance schedule: %d machine(s) scheduled",
                 len(maintenance.windows_of(self.schedule)))
        return Response(200)

    def _maintenance_status(self):
        draining = [{"id": m} for k, (m, _) in maintenance.windows_of(self.schedule).items()
                    if k not in self.down]
        status = {}
        if draining:
            status["draining_machines"] = draining
        if self.down:
            status["down_machines"] = list(self.down.values())
        return status

    def _scheduled_in_mode(self, ids, down):
        """Each machine must be scheduled, and DRAINING (to go down) or DOWN (to come up)."""
        scheduled = maintenance.windows_of(self.schedule)
        mode, verb = ("DOWN", "up") if down else ("DRAINING", "down")
        for m in ids:
            if maintenance.key(m) not in scheduled:
                raise maintenance.MaintenanceError(
                    f"Machine '{maintenance.text(m)}' is not part of a maintenance schedule")
            if (maintenance.key(m) in self.down) != down:
                raise maintenance.MaintenanceError(
                    f"Machine '{maintenance.text(m)}' is not in {mode} mode and cannot be "
                    f"brought {verb}")
        return {maintenance.key(m): scheduled[maintenance.key(m)][0] for m in ids}

    def _machines_down(self, ids):
        machines = self._scheduled_in_mode(ids, down=False)
        for agent in [a for a in self.agents.values() if self._machine_key(a) in machines]:
            # Tell the agent to shut down, and remove it at once: its tasks are LOST even if
            # the message never arrives.
            self._send(agent, "/standin/shutdown",
                       {"message": "Operator initiated 'Machine DOWN'"})
            self._remove_agent(agent, f"Agent {agent['hostname']} removed: Operator "
                                      "initiated 'Machine DOWN'")
        self.down.update(machines)
        self._store_registry()
        log.info("Machine(s) %s are DOWN", ", ".join(maintenance.text(m) for m in ids))
        return Response(200)

    def _machines_up(self, ids):
        machines = self._scheduled_in_mode(ids, down=True)
        for k in machines:
            del self.down[k]
        self.schedule = maintenance.without(self.schedule, machines)
        self._store_registry()
        log.info("Machine(s) %s are UP", ", ".join(maintenance.text(m) for m in ids))
        return Response(200)

    @staticmethod
    def _machine_key(agent):
        """The machine an agent runs on: the hostname it announces and its pid's IP."""
        return maintenance.key({"hostname": agent["hostname"], "ip": agent["ip"]})

    # ---- /standin/* (test equipment only: replaces libprocess messages) ----------------
    def _register_agent(self, body):
        """Registration, re-registration (the body carries the agent's tasks) and heartbeat.
        The reply's "shutdown" is the real ShutdownMessage."""
        now = time.time()
        machine = self._machine_key(body)
        if machine in self.down:
            log.warning("Refusing registration of agent at %s because the machine '%s' that "
                        "it is running on is `DOWN`", body["pid"],
                        maintenance.text(self.down[machine]))
            return Response(200, {"shutdown": "Machine is `DOWN`"})
        aid = body.get("agent_id")
        agent = self.agents.get(aid) if aid else None
        if agent is None and "tasks" not in body:
            # A heartbeat from an agent this master does not know (removed as unreachable):
            # it must re-register, telling what it runs.
            return Response(409, {"message": f"Agent {aid} is not registered"})
        if agent is None:
            if not aid:
                aid = f"{self.id}-S{self.next_agent}"
                self.next_agent += 1
                log.info("Registered agent %s at %s", aid, body["pid"])
            else:
                log.info("Re-registered agent %s at %s", aid, body["pid"])
            agent = self.agents[aid] = {"id": aid, "registered_time": now,
                                        "reregistered_time": now if body.get("agent_id") else None}
        if "tasks" in body:
            self._reconcile_agent(aid, body["tasks"])
        agent.update(hostname=body["hostname"], port=body["port"], pid=body["pid"],
                     ip=body["ip"], resources=body["resources"],
                     attributes=body.get("attributes", {}), version=body["version"],
                     active=True, last_seen=now)
        return Response(200, {"agent_id": aid, "master_id": self.id})

    @staticmethod
    def _task_record(t):
        """The fields of a task the master keeps and shows (an agent's record has more)."""
        return {k: t.get(k) for k in ("id", "name", "framework_id", "executor_id", "slave_id",
                                      "state", "resources", "labels", "statuses", "discovery")}

    def _reconcile_agent(self, aid, reported):
        """The agent's tasks are the truth for that agent: take their latest state; what the
        master has there that the agent does not know was never delivered (TASK_DROPPED)."""
        seen = set()
        for t in reported:
            fw = self._framework(t["framework_id"], t.pop("framework_name", ""))
            seen.add((fw["id"], t["id"]))
            fw["unreachable_tasks"].pop(t["id"], None)
            known = fw["tasks"].get(t["id"])
            if known is None or known["state"] != t["state"]:
                fw["tasks"][t["id"]] = self._task_record(t)
                log.info("Task %s of framework %s on agent %s is %s", t["id"], fw["id"], aid,
                         t["state"])
        for fw in self.frameworks.values():
            for tid, t in list(fw["tasks"].items()):
                if t["slave_id"] == aid and (fw["id"], tid) not in seen:
                    self._set_task_state(fw, tid, "TASK_DROPPED",
                                         "Reconciliation: task unknown to the agent",
                                         "REASON_RECONCILIATION")

    def _agent_exited(self, body):
        agent = self.agents.get(body.get("agent_id"))
        if agent:
            log.info("Agent %s disconnected", agent["id"])
            agent["active"] = False
            agent["last_seen"] = min(agent["last_seen"], time.time() - AGENT_INACTIVE_AFTER)
        return Response(200, {})

    def _authenticate(self, body):
        """CRAM-MD5's exchange, in two calls: a challenge for the principal, then the HMAC-MD5
        of it keyed with the secret. Without the principal in --credentials, or with the
        wrong answer: refused."""
        pid, principal = body.get("pid", ""), body.get("principal", "")
        if "response" not in body:
            log.info("Authenticating %s", pid)
            self.authenticated.pop(pid, None)
            challenge = uuid.uuid4().hex
            self.challenges[pid] = (principal, challenge)
            return Response(200, {"challenge": challenge})
        asked, challenge = self.challenges.pop(pid, ("", ""))
        secret = self.credentials.get(principal)
        expected = secret is not None and hmac.new(
            secret.encode(), challenge.encode(), hashlib.md5).hexdigest()
        if asked != principal or not challenge or not hmac.compare_digest(
                str(expected), str(body["response"])):
            log.warning("Failed to authenticate %s: Refused authentication", pid)
            return Response(200, {"authenticated": False})
        log.info("Successfully authenticated principal '%s' at %s", principal, pid)
        self.authenticated[pid] = principal
        return Response(200, {"authenticated": True})

    def _framework_refused(self, body):
        """Master::validateFrameworkAuthentication: why the master refuses this framework."""
        pid = body.get("pid", "")
        if self.flags["authenticate_frameworks"] and pid not in self.authenticated:
            return f"Framework at {pid} is not authenticated"
        principal = body.get("principal")
        if principal and pid in self.authenticated and self.authenticated[pid] != principal:
            return (f"Framework principal '{principal}' does not match authenticated "
                    f"principal '{self.authenticated[pid]}'")
        return ""

    def _register_framework(self, body):
        refused = self._framework_refused(body)
        if refused:
            log.info("Refusing subscription of framework '%s' at %s: %s", body.get("name", ""),
                     body.get("pid", ""), refused)
            # The FrameworkErrorMessage the scheduler driver gets.
            return Response(403, {"message": refused})
        fid = body.get("framework_id")
        if not fid:
            fid = f"{self.id}-{self.next_framework:04d}"
            self.next_framework += 1
            log.info("Registered framework %s (%s)", fid, body.get("name"))
        fw = self._framework(fid, body.get("name", ""), hostname=body.get("hostname"),
                             principal=self.authenticated.get(body.get("pid", "")),
                             webui_url=body.get("webui_url"),
                             failover_timeout=body.get("failover_timeout"),
                             capabilities=body.get("capabilities"))
        if not fw["active"]:
            log.info("Framework %s (%s) is active", fid, fw["name"])
        fw.update(active=True, last_seen=time.time())
        return Response(200, {"framework_id": fid, "master_id": self.id})

    def _updates(self, body):
        """The framework's status updates since it last asked (then acknowledged)."""
        fw = self.frameworks.get(body["framework_id"])
        if fw is None:
            return Response(409, {"message": "Framework is not registered"})
        updates, fw["updates"] = fw["updates"], []
        return Response(200, {"updates": updates})

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
        self._send(agent, "/standin/launch",
                   {"framework": {"id": fw["id"], "name": fw["name"]}, "task": task})
        return Response(200, {"task_id": t["id"]})

    def _kill(self, body):
        for fw in self.frameworks.values():
            task = fw["tasks"].get(body["task_id"])
            if task:
                agent = self.agents.get(task["slave_id"])
                if agent:
                    self._send(agent, "/standin/kill", body)
                return Response(200, {})
        return Response(404, {"message": "Unknown task"})

    def _status_update(self, body):
        if body["agent_id"] not in self.agents:
            # Not acknowledged: the agent keeps it and resends once it is registered again.
            log.warning("Ignoring status update %s for task %s from unknown agent %s",
                        body["state"], body["task_id"], body["agent_id"])
            return Response(409, {"message": "Unknown agent"})
        fw = self.frameworks.get(body["framework_id"])
        if fw is None:
            fw = self._framework(body["framework_id"], body.get("framework_name", ""))
        tid = body["task_id"]
        if tid not in fw["tasks"] and tid not in fw["unreachable_tasks"] and "task" in body:
            fw["tasks"][tid] = self._task_record(body["task"])
        self._set_task_state(fw, tid, body["state"], body.get("message", ""),
                             body.get("reason"))
        return Response(200, {})


# The maintenance endpoints (each also under /master) and the methods they take.
_MAINTENANCE = {"/maintenance/schedule": ("GET", "POST"), "/maintenance/status": ("GET",),
                "/machine/down": ("POST",), "/machine/up": ("POST",)}


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
    try:
        master = Master(flags)
    except flagslib.FlagError as e:
        log.critical("%s", e)       # EXIT(EXIT_FAILURE) in Master::initialize
        return 1
    log.info("Master only allowing authenticated frameworks to register"
             if flags["authenticate_frameworks"] else
             "Master allowing unauthenticated frameworks to register")
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
