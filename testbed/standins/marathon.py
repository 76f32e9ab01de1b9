"""Stand-in for the Marathon daemon (1.4 / 1.6 flags): TEST EQUIPMENT, not Marathon.

Kept from the real Marathon, because the tutorial and the project's checks rely on it:
- flags (scallop: `--name value`), `--master` required, `--zk` default
  zk://localhost:2181/marathon, `--http_port` 8080;
- HA: every instance joins an election under `<zk path>/leader/` (ephemeral sequential, data
  `host:port`); the leader serves, the others proxy every request to it (X-Marathon-Via), the
  leader sets X-Marathon-Leader. As LeaderProxyFilter: while no other leader is known a
  standby holds a request up to 2.75 s, then 503 "Could not determine the current leader";
  a leader that refuses the connection: 503 (1.4) / 502 (1.6) "Connection to leader refused.",
  that times out: 504 (Jetty's HTML error pages). The leader exits as soon as its ZooKeeper
  connection is suspended (Curator's LeaderLatch loses leadership, Marathon then terminates),
  having ended its session as soon as it got through to a server again;
- apps, the framework id and Marathon's own record of each task (its app, the version it was
  launched with, its agent and state) live in ZooKeeper (`<zk path>/state/...`), so they
  survive a leader change. The records change on status updates and on reconciliation with
  the master's state, never because the master does not list a task: a master failover or an
  agent that re-registers late launches no copy; an unreachable task (its machine DOWN, its
  agent removed) is replaced after unreachableStrategy.inactiveAfterSeconds (marathon_tasks.py);
- `--enable_features maintenance_mode` (1.6): no launch on an agent in a maintenance window
  of the master's schedule (from `--draining_seconds` before it starts);
- the subset of REST v2 that the tasks use, with the real status codes, bodies and
  headers: apps (create, partial or whole update, scale, restart, destroy), groups (POST, PUT),
  deployments (list; DELETE rolls back with a new deployment, ?force=true stops it: 202, no
  body), the launch queue (delay.timeLeftSeconds, DELETE .../delay: 204);
- deployments as Marathon plans them: steps (stop removed apps, start new ones, then scale or
  restart), one step finished before the next starts, 409 "App is locked" with the
  deployments' ids while one touches the app, unless ?force=true overrides it;
- a restart or config change replaces the tasks (new ones first, then the old ones go, as the
  default upgradeStrategy 1/1 does); each task keeps the version it was launched with;
- a task that ends is started again (backoffSeconds x backoffFactor^n after failures);
- `--http_credentials user:password`: every request without them (or with others) gets Jetty's
  401 "Unauthorized" page and `WWW-Authenticate: basic realm="<--http_realm, Mesosphere>"`, as
  chaos' BasicAuthenticator answers; a value that is not user:password is logged and ignored;
- `--mesos_authentication` (needs `--mesos_authentication_principal`): it authenticates to each
  new Mesos leader with the secret of `--mesos_authentication_secret_file` (read whole, a
  newline included) before it registers; a master that refuses the authentication or the
  registration ("Framework at ... is not authenticated") makes it exit 137 after "Committing
  suicide!", as MarathonScheduler.error does.
Dropped: offers (it asks the master to launch on an agent with room: `/standin/launch`), health
checks, readiness checks, dependencies between apps, pods, events, the web UI (a trivial page).
Deployments live in the leader's memory only: a new leader starts with none.
"""
import base64
import hashlib
import hmac
import json
import logging
import os
import re
import shlex
import socket
import sys
import threading
import time
import urllib.parse
import uuid

from kazoo.exceptions import KazooException, NodeExistsError, NoNodeError

from . import common, flags as flagslib, maintenance, marathon_apps as apps, zk as zklib
from .marathon_tasks import FAILURES, TaskRecords
from .common import Response

log = logging.getLogger("marathon")
PROG = "marathon"
VERSION = common.version("marathon", "1.4.8")
TICK = 1.0
PARTIAL_UPDATE_PARAM = tuple(map(int, VERSION.split(".")[:2])) >= (1, 5)

_S, _I, _F, _B = str, int, float, bool
SPEC = {name: (_S, None) for name in (
    "access_control_allow_origin", "default_accepted_resource_roles", "enable_features",
    "env_vars_prefix", "event_subscriber", "executor", "framework_name", "hostname",
    "http_address", "http_credentials", "http_endpoints", "http_realm", "https_address",
    "logging_level", "master", "mesos_authentication_principal",
    "mesos_authentication_secret_file", "mesos_leader_ui_url", "mesos_role", "mesos_user",
    "plugin_conf", "plugin_dir", "ssl_keystore_password", "ssl_keystore_path", "webui_url",
    "zk", "gpu_scheduling_behavior", "internal_store_backend", "logstash", "sentry")}
SPEC.update({name: (_I, None) for name in (
    "decline_offer_duration", "draining_seconds", "failover_timeout", "http_max_concurrent_requests", "http_port",
    "https_port", "leader_proxy_connection_timeout", "leader_proxy_read_timeout",
    "local_port_max", "local_port_min", "max_apps", "max_tasks_per_offer",
    "min_revive_offers_interval", "on_elected_prepare_timeout", "reconciliation_initial_delay",
    "reconciliation_interval", "scale_apps_initial_delay", "scale_apps_interval",
    "task_launch_confirm_timeout", "task_launch_timeout", "task_lost_expunge_gc",
    "zk_max_versions", "zk_session_timeout", "zk_timeout", "max_instances_per_offer")})
SPEC.update({name: (_B, False) for name in (
    "ha", "disable_ha", "checkpoint", "disable_checkpoint", "mesos_authentication",
    "disable_mesos_authentication", "revive_offers_for_new_apps",
    "disable_revive_offers_for_new_apps", "store_cache", "disable_store_cache",
    "zk_compression", "disable_zk_compression", "metrics", "disable_metrics", "tracing",
    "disable_tracing", "disable_http", "help", "version")})
DEFAULTS = {"zk": "zk://localhost:2181/marathon", "http_port": 8080, "https_port": 8443,
            "framework_name": "marathon", "failover_timeout": 604800, "local_port_min": 10000,
            "local_port_max": 20000, "zk_timeout": 10000, "zk_session_timeout": 10000}


# --enable_features (Features.scala): 1.6 adds maintenance_mode, with --draining_seconds.
FEATURES = {
    "vips": "Enable networking VIPs UI",
    "task_killing": "Enable the optional TASK_KILLING state, available in Mesos 0.28 and later",
    "external_volumes": "Enable external volumes support in Marathon",
    "secrets": "Enable support for secrets in Marathon (experimental)",
    "gpu_resources": "Enable support for GPU in Marathon (experimental)",
}
FEATURES_1_6 = dict(FEATURES, maintenance_mode="Enable support for maintenance mode  in "
                                               "Marathon (experimental)")


def load_flags(argv, version=VERSION):
    since_1_6 = _version_at_least(version, 1, 6)
    spec = SPEC if since_1_6 else {k: v for k, v in SPEC.items() if k != "draining_seconds"}
    f = flagslib.parse_scallop(argv, spec)
    if f["help"] or f["version"]:
        return f
    f.setdefault("draining_seconds", None)
    features = FEATURES_1_6 if since_1_6 else FEATURES
    unknown = [x for x in (f["enable_features"] or "").split(",")
               if x.strip() and x.strip() not in features]
    if unknown:
        raise flagslib.FlagError(
            f"Unknown features specified: {', '.join(unknown)}. Available features are: "
            + ", ".join(f"{name} - {text}" for name, text in features.items()))
    for name, value in DEFAULTS.items():
        if f[name] is None:
            f[name] = value
    if not f["master"]:
        raise flagslib.FlagError("[scallop] Error: Required option 'master' not found")
    if f["mesos_authentication"] and not f["mesos_authentication_principal"]:
        raise flagslib.FlagError("[scallop] Error: When specifying 'mesos_authentication', you "
                                 "must also specify 'mesos_authentication_principal'")
    try:
        zklib.parse_zk_url(f["zk"])
    except zklib.ZkUrlError as e:
        raise flagslib.FlagError(f"[scallop] Error: Validation failure for 'zk' option "
                                 f"parameters: {e}") from None
    f["hostname"] = f["hostname"] or socket.gethostname()
    return f


class Marathon:
    def __init__(self, flags):
        self.flags = flags
        self.me = f"{flags['hostname']}:{flags['http_port']}"
        self.lock = threading.RLock()
        self.leader = None              # "host:port" of the leader, or None
        self.elected = False
        self.elected_at = 0.0
        self.apps = {}                  # id -> app (leader only; persisted in ZooKeeper)
        self.deployments = {}           # id -> deployment (leader memory)
        self.plans = {}                 # deployment id -> (original, target): {app id: app|None}
        self.records = TaskRecords(_ZkTasks(self))  # our tasks (marathon_tasks.py)
        self.failures = {}              # app id -> (consecutive failures, last failure dict)
        self.next_launch = {}           # app id -> earliest time to launch again (backoff)
        self.framework_id = None
        self.mesos = None               # last MasterInfo of the Mesos leader
        self.agents = {}                # the active agents, from the master's state
        self.visible = set()            # our task ids the master's state showed last
        self.strays = []                # tasks the master runs for us that we do not know
        self.windows = {}               # machine key -> unavailability (maintenance_mode)
        self.stopping = False
        self.rejoin = False             # a standby whose session expired stands again
        self.http_auth = _http_credentials(flags["http_credentials"])
        self.pid = f"scheduler-{uuid.uuid4()}@{flags['hostname']}"   # the driver's libprocess pid
        self.authenticated_with = None  # the Mesos leader (its id) it authenticated to

    # ---- ZooKeeper: election and state -------------------------------------------------
    def start(self):
        hosts, self.path = zklib.parse_zk_url(self.flags["zk"])
        self.zk = zklib.client(hosts, self.flags["zk_session_timeout"] / 1000.0)
        self.zk.add_listener(self._on_zk_state)
        self.zk.ensure_path(f"{self.path}/state/apps")
        self.zk.ensure_path(f"{self.path}/state/tasks")
        self.zk.ensure_path(f"{self.path}/leader")
        self.ha = not self.flags["disable_ha"]
        if self.ha:
            self._candidate()
            self.zk.ChildrenWatch(f"{self.path}/leader", self._on_candidates)
        else:
            self._set_leader(self.me)

    def _candidate(self):
        self.znode = self.zk.create(f"{self.path}/leader/member_", self.me.encode(),
                                    ephemeral=True, sequence=True)

    def _on_zk_state(self, state):
        if state in ("SUSPENDED", "LOST") and self.elected and not self.stopping:
            # Curator's LeaderLatch gives up leadership as soon as the connection is suspended,
            # and Marathon exits when it loses leadership ("Terminating after loss of
            # leadership"); systemd restarts it. On its way out it closes the latch and the
            # client, which end its session once the client is connected again: see below.
            log.critical("Lost leadership (ZooKeeper connection %s); exiting", state.lower())
            self.elected = False
            threading.Thread(target=self._exit_after_abdication, daemon=True).start()
            return
        if state == "LOST" and self.ha:
            # A standby's candidate node died with its session: stand again once reconnected
            # (as Curator's LeaderLatch does), or it would follow a stale leader forever.
            self.rejoin = True
        elif state == "CONNECTED" and self.rejoin and not self.stopping:
            self.rejoin = False
            # Listeners must not block kazoo's event thread: do the ZooKeeper calls elsewhere.
            threading.Thread(target=self._stand_again, daemon=True).start()

    def _abdicate(self):
        """DELETE /v2/leader on the leader (a standby proxies it here): LeaderResource answers,
        then the election service abdicates and Marathon exits (systemd starts it again). Its
        ZooKeeper client is connected, so its candidate node goes at once and a standby wins."""
        log.info("Abdicating leadership on request")
        self.elected = False
        self.stopping = True        # no reaction to the session closing below

        def later():
            time.sleep(0.2)         # the answer goes out first
            self._exit_after_abdication()
        threading.Thread(target=later, daemon=True).start()
        return Response(200, {"message": "Leadership abdicated"})

    def _exit_after_abdication(self):
        """Marathon's shutdown hooks abdicate and close the ZooKeeper client, then the JVM
        exits. The client's close goes out once it is connected again (to another server of
        the ensemble): the session ends and its candidate node with it, so a standby leads at
        once; if no server answers within the session timeout, the node stays until the
        session expires."""
        deadline = time.time() + self.flags["zk_session_timeout"] / 1000.0
        try:
            while not self.zk.connected and time.time() < deadline:
                time.sleep(0.1)
            self.zk.stop()
        finally:
            os._exit(1)

    def _stand_again(self):
        """Join the election again under a new session. The election's znode may be gone too
        (an ensemble that re-formed from another member's data): Curator creates the parents
        again, and so does this; a connection lost meanwhile means trying again."""
        log.info("ZooKeeper session re-established; joining the election again")
        while not self.stopping:
            try:
                self.zk.ensure_path(f"{self.path}/leader")
                self._candidate()
                self.zk.ChildrenWatch(f"{self.path}/leader", self._on_candidates)
                return
            except KazooException as e:
                log.warning("Could not join the election (%r); trying again", e)
                time.sleep(1)

    def _on_candidates(self, children):
        if self.stopping:
            return False
        members = sorted(c for c in children if c.startswith("member_"))
        leader = None
        if members:
            try:
                leader = self.zk.get(f"{self.path}/leader/{members[0]}")[0].decode()
            except NoNodeError:
                pass
        if self.elected and self.znode.rsplit("/", 1)[1] not in members:
            log.critical("Lost leadership; exiting")
            os._exit(1)
        self._set_leader(leader, mine=bool(members) and
                         members[0] == self.znode.rsplit("/", 1)[1])
        return True

    def _set_leader(self, leader, mine=True):
        self.leader = leader
        if mine and not self.elected:
            log.info("Elected as leader (%s)", self.me)
            with self.lock:
                self._load_state()
                self.elected, self.elected_at = True, time.time()
        elif leader and not mine:
            log.info("Current leader: %s", leader)

    def _app_node(self, app_id):
        return f"{self.path}/state/apps/" + urllib.parse.quote(app_id, safe="")

    def _load_state(self):
        for node in ("state/apps", "state/tasks"):   # gone if the ensemble lost its data
            self.zk.ensure_path(f"{self.path}/{node}")
        self.apps = {}
        for name in self.zk.get_children(f"{self.path}/state/apps"):
            app = json.loads(self.zk.get(f"{self.path}/state/apps/{name}")[0].decode())
            self.apps[app["id"]] = app
        self.records = TaskRecords(_ZkTasks(self), [
            json.loads(self.zk.get(f"{self.path}/state/tasks/{name}")[0].decode())
            for name in self.zk.get_children(f"{self.path}/state/tasks")])
        try:
            self.framework_id = self.zk.get(f"{self.path}/state/framework-id")[0].decode()
        except NoNodeError:
            self.framework_id = None
        log.info("Loaded %d app(s); framework id %s", len(self.apps), self.framework_id)

    def _store(self, app):
        data = json.dumps(app).encode()
        try:
            self.zk.create(self._app_node(app["id"]), data)
        except NodeExistsError:
            self.zk.set(self._app_node(app["id"]), data)

    # ---- scheduling (leader) -----------------------------------------------------------
    def tick(self, detector):
        if not self.elected:
            return
        leader = detector.leader()
        if leader is None:
            return
        if self.mesos is None or leader.get("id") != self.mesos.get("id"):
            log.info("Mesos leader is %s", leader["pid"])
            self.mesos = leader
        url = detector.url(leader)
        if self.flags["mesos_authentication"] and self.authenticated_with != leader.get("id"):
            self._authenticate(url)
            self.authenticated_with = leader.get("id")
        status, reply, _ = common.call("POST", url + "/standin/register_framework", {
            "pid": self.pid, "principal": self.flags["mesos_authentication_principal"],
            "framework_id": self.framework_id, "name": self.flags["framework_name"],
            "hostname": self.flags["hostname"], "failover_timeout": self.flags[
                "failover_timeout"], "webui_url": f"http://{self.me}",
            "capabilities": [{"type": "PARTITION_AWARE"}]})
        if status == 403:
            self._error(reply.get("message", ""))
        if status != 200:
            return
        if reply["framework_id"] != self.framework_id:
            self.framework_id = reply["framework_id"]
            log.info("Registered with Mesos as framework %s", self.framework_id)
            self.zk.ensure_path(f"{self.path}/state")
            try:
                self.zk.create(f"{self.path}/state/framework-id", self.framework_id.encode())
            except NodeExistsError:
                self.zk.set(f"{self.path}/state/framework-id", self.framework_id.encode())
        # Status updates first, then the state: a task the state shows as ended has its
        # update queued already, so reconciliation never guesses an end a later update tells.
        status, reply, _ = common.call("POST", url + "/standin/updates",
                                       {"framework_id": self.framework_id})
        updates = reply["updates"] if status == 200 else []
        fetched_at = time.time()
        status, state, _ = common.call("GET", url + "/master/state")
        if status != 200:
            return
        windows = self._maintenance_windows(url)
        # HTTP to the master happens outside the lock, so the API never waits on Mesos.
        with self.lock:
            for u in updates:
                self._outcome(self.records.apply(u["task_id"], u["state"], u["timestamp"],
                                                 u.get("reason"), u.get("message", "")),
                              u["state"], u.get("message", ""))
            self._observe(state, fetched_at)
            self.windows = windows
            self._scale(url)
            self._advance_deployments()

    def _authenticate(self, url):
        """The scheduler driver's CRAM-MD5 with the master (sched.cpp): a refusal is an
        error, and MarathonScheduler.error ends Marathon."""
        principal = self.flags["mesos_authentication_principal"]
        secret_file = self.flags["mesos_authentication_secret_file"]
        secret = b""       # the secret is optional: the principal alone
        if secret_file:
            with open(secret_file, "rb") as fh:
                secret = fh.read()
        log.info("Authenticating with master %s", self.mesos["pid"])
        _, reply, _ = common.call("POST", url + "/standin/authenticate",
                                  {"pid": self.pid, "principal": principal})
        answer = hmac.new(secret, reply["challenge"].encode(), hashlib.md5).hexdigest()
        _, reply, _ = common.call("POST", url + "/standin/authenticate",
                                  {"pid": self.pid, "principal": principal, "response": answer})
        if not reply.get("authenticated"):
            log.error("Master %s refused authentication", self.mesos["pid"])
            self._error("Master refused authentication")
        log.info("Successfully authenticated with master %s", self.mesos["pid"])

    def _error(self, message):
        log.warning("Error: %s\nIn case Mesos does not allow registration with the current "
                    "frameworkId, delete the ZooKeeper Node: %s/state/framework:id\nCAUTION: "
                    "if you remove this node, all tasks started with the current frameworkId "
                    "will be orphaned!", message, self.path)
        log.error("Committing suicide!")
        logging.shutdown()
        os._exit(137)

    def _observe(self, state, fetched_at):
        """The master's state: which agents are active, and reconciliation of our tasks."""
        fw = next((f for f in state["frameworks"] if f["id"] == self.framework_id), {})
        self.agents = {a["id"]: a for a in state["slaves"] if a["active"]}
        live = {t["id"]: t["state"] for t in fw.get("tasks", [])}
        ended = {t["id"] for key in ("completed_tasks", "unreachable_tasks")
                 for t in fw.get(key, [])}
        self.visible = set(live)
        for outcome in self.records.reconcile(live, ended, set(self.agents), fetched_at):
            self._outcome(outcome, outcome[0]["state"], "Reconciliation")
        self.strays = [tid for tid in live if tid not in self.records.records]

    def _outcome(self, outcome, state, message):
        """Act on what a status update did to a task's record: count failures (backoff,
        lastTaskFailure), log ends and unreachable tasks."""
        if outcome is None:
            return
        record, kind = outcome
        if kind == "changed":
            return
        log.info("Task %s of %s is %s: %s", record["id"], record["app"],
                 "TASK_UNREACHABLE" if kind == "unreachable" else state, message)
        app = self.apps.get(record["app"])
        if kind != "ended" or app is None:
            return
        if state in FAILURES or (state == "TASK_LOST" and kind == "ended"):
            count, _ = self.failures.get(app["id"], (0, None))
            now = time.time()
            self.failures[app["id"]] = (count + 1, {
                "appId": app["id"], "host": record["host"], "message": message,
                "state": state, "taskId": record["id"], "timestamp": apps.timestamp(now),
                "version": record["version"], "slaveId": record["agent_id"]})
            self.next_launch[app["id"]] = now + min(
                app["backoffSeconds"] * app["backoffFactor"] ** count,
                app["maxLaunchDelaySeconds"])
        elif state == "TASK_FINISHED" and app["id"] in self.failures:
            self.failures[app["id"]] = (0, self.failures[app["id"]][1])

    def _app_tasks(self, app_id):
        return self.records.of_app(app_id)

    def _counted(self, app):
        """The app's tasks that count as instances: all but the unreachable ones whose
        unreachableStrategy says they are to be replaced."""
        now = time.time()
        return [t for t in self._app_tasks(app["id"]) if not self.records.inactive(t, app, now)]

    def _current(self, task, app):
        """Launched with the app's present configuration (a restart or config change makes the
        running tasks old)."""
        return task["config"] == _config_version(app)

    def _scale(self, master_url):
        for record in self.records.expunge(self.apps, time.time()):
            log.info("Expunged unreachable task %s", record["id"])
            self._kill(master_url, record)
        for app_id, app in list(self.apps.items()):
            tasks = self._counted(app)
            current = [t for t in tasks if self._current(t, app)]
            old = [t for t in tasks if not self._current(t, app)]
            missing = app["instances"] - len(current)
            if missing > 0 and time.time() >= self.next_launch.get(app_id, 0):
                for _ in range(missing):
                    if not self._launch(master_url, app):
                        break
            elif missing < 0:  # killSelection YOUNGEST_FIRST
                for t in sorted(current, key=self._started, reverse=True)[:-missing]:
                    self._kill(master_url, t)
            # upgradeStrategy 1/1: the old tasks go once the new ones all run.
            if old and sum(t["state"] == "TASK_RUNNING" for t in current) >= app["instances"]:
                for t in old:
                    self._kill(master_url, t)
        for t in list(self.records.records.values()):  # tasks of deleted apps
            if t["app"] not in self.apps:
                self._kill(master_url, t)
        for tid in self.strays:  # Marathon kills a task it does not know
            log.info("Killing unknown task %s", tid)
            self._kill(master_url, {"id": tid})

    def _kill(self, master_url, task):
        common.call("POST", master_url + "/standin/kill",
                    {"framework_id": self.framework_id, "task_id": task["id"]})

    @staticmethod
    def _started(task):
        return task["launched_at"]

    def _launch(self, master_url, app):
        for agent in sorted(self.agents.values(), key=lambda a: a["id"]):
            if self._in_maintenance(agent):
                continue
            free = {k: agent["resources"].get(k, 0) - agent["used_resources"].get(k, 0)
                    for k in ("cpus", "mem", "disk")}
            for t in self.records.records.values():  # launches the master did not show yet
                if t["agent_id"] == agent["id"] and t["id"] not in self.visible:
                    for k in free:
                        free[k] -= t["resources"].get(k, 0)
            if any(app[k] > free[k] + 1e-9 for k in free):
                continue
            ports = self._ports(agent, len(app["portDefinitions"]))
            if ports is None:
                continue
            tid = apps.task_id(app["id"])
            env = dict(app["env"], MARATHON_APP_ID=app["id"],
                       MARATHON_APP_VERSION=app["version"], MESOS_TASK_ID=tid)
            for i, p in enumerate(ports):
                env[f"PORT{i}"] = str(p)
            if ports:
                env.update(PORT=str(ports[0]), PORTS=",".join(map(str, ports)))
            cmd = app["cmd"] if app["cmd"] is not None else " ".join(
                shlex.quote(a) for a in app["args"] or [])
            resources = {"cpus": app["cpus"], "mem": app["mem"], "disk": app["disk"]}
            if ports:
                resources["ports"] = common.ranges_text(ports)
            # Recorded before it is sent: a leader that dies in between leaves a record, which
            # reconciliation settles, never a task nobody knows.
            self.records.launched(tid, app["id"], app["version"], _config_version(app), agent,
                                  resources, time.time())
            status, reply, _ = common.call("POST", master_url + "/standin/launch", {
                "framework_id": self.framework_id, "agent_id": agent["id"],
                "task": {"task_id": tid, "name": app["id"].strip("/").replace("/", "."),
                         "command": {"value": cmd}, "resources": resources, "env": env,
                         "labels": [{"key": k, "value": v} for k, v in app["labels"].items()]}})
            if status == 200:
                log.info("Launched task %s on agent %s", tid, agent["hostname"])
                return True
            self.records.forget(tid)
            log.warning("Launch of %s on %s refused: %s", tid, agent["id"], reply)
        return False

    def _maintenance_windows(self, master_url):
        """Marathon 1.6 with `--enable_features maintenance_mode` declines offers from agents
        in a maintenance window; the offers' unavailability is the master's schedule."""
        if "maintenance_mode" not in [x.strip() for x in
                                      (self.flags["enable_features"] or "").split(",")]:
            return {}
        status, schedule, _ = common.call("GET", master_url + "/master/maintenance/schedule")
        return {k: w for k, (_, w) in maintenance.windows_of(schedule).items()} \
            if status == 200 else self.windows

    def _in_maintenance(self, agent):
        """Availability.offerAvailable (1.6): from `draining_seconds` before the window's start
        until its end (for ever without a duration)."""
        window = self.windows.get(maintenance.key(
            {"hostname": agent["hostname"], "ip": agent["pid"].rsplit("@", 1)[1].split(":")[0]}))
        if window is None:
            return False
        now_ns = time.time() * 1e9
        start = window["start"]["nanoseconds"]
        if now_ns < start - (self.flags["draining_seconds"] or 0) * 1e9:
            return False
        return "duration" not in window or now_ns <= start + window["duration"]["nanoseconds"]

    def _ports(self, agent, count):
        if count == 0:
            return []
        used = set()
        for lo, hi in common.parse_ranges(agent["used_resources"].get("ports", "")):
            used.update(range(lo, hi + 1))
        free = [p for lo, hi in common.parse_ranges(agent["resources"].get("ports", ""))
                for p in range(lo, hi + 1) if p not in used]
        return free[:count] if len(free) >= count else None

    def _advance_deployments(self):
        """One step at most per deployment and tick: Marathon's steps run one after another."""
        for dep_id, dep in list(self.deployments.items()):
            step = dep["steps"][dep["currentStep"] - 1] if dep["steps"] else {"actions": []}
            if not all(self._action_done(a) for a in step["actions"]):
                continue
            if dep["currentStep"] >= dep["totalSteps"]:
                log.info("Deployment %s of %s finished", dep_id, ", ".join(dep["affectedApps"]))
                del self.deployments[dep_id]
                self.plans.pop(dep_id, None)
                continue
            dep["currentStep"] += 1
            dep["currentActions"] = _current_actions(dep)

    def _action_done(self, action):
        app_id = action["app"]
        app, tasks = self.apps.get(app_id), self._app_tasks(app_id)
        if action["action"] == "StopApplication":
            return app is None and not tasks
        if app is None:
            return False
        if action["action"] == "StartApplication":
            return True
        return (len(tasks) == app["instances"]
                and all(t["state"] == "TASK_RUNNING" and self._current(t, app) for t in tasks))

    def _locks(self, app_ids):
        """Ids of the running deployments that touch any of these apps."""
        return [d["id"] for d in self.deployments.values()
                if set(d["affectedApps"]) & set(app_ids)]

    def _apply(self, target, version):
        """Make `target` ({app id: app or None}) the apps' state and start the deployment that
        gets the tasks there; the deployments it overrides end (as ?force=true does)."""
        original = {a: self.apps.get(a) for a in target}
        for app_id, app in target.items():
            if app is None:
                self.apps.pop(app_id, None)
                try:
                    self.zk.delete(self._app_node(app_id))
                except NoNodeError:
                    pass
            else:
                self._store(app)
                self.apps[app_id] = app
                self.next_launch.pop(app_id, None)
        for old in self._locks(list(target)):
            del self.deployments[old]
            self.plans.pop(old, None)
        steps = apps.plan_steps(original, target)
        dep = {"id": str(uuid.uuid4()), "version": version, "affectedApps": sorted(target),
               "affectedPods": [], "steps": steps, "currentStep": 1 if steps else 0,
               "totalSteps": len(steps)}
        dep["currentActions"] = _current_actions(dep)
        self.deployments[dep["id"]] = dep
        self.plans[dep["id"]] = (original, target)
        return dep

    # ---- REST v2 -----------------------------------------------------------------------
    def _app_view(self, app, embed=()):
        """The app as GET /v2/apps shows it: counts and deployments always; "tasks" and
        "lastTaskFailure" when embedded (GET /v2/apps/{id} embeds both)."""
        tasks = self._app_tasks(app["id"])
        view = dict(app)
        view.update(
            tasksStaged=sum(1 for t in tasks if t["state"] == "TASK_STAGING"),
            tasksRunning=sum(1 for t in tasks if t["state"] == "TASK_RUNNING"),
            tasksHealthy=0, tasksUnhealthy=0,
            deployments=[{"id": d} for d in self._locks([app["id"]])])
        if "tasks" in embed:
            view["tasks"] = [self._task_view(t) for t in tasks]
        failure = self.failures.get(app["id"], (0, None))[1]
        if failure and "lastTaskFailure" in embed:
            view["lastTaskFailure"] = failure
        return view

    def _task_view(self, t):
        running = [s["timestamp"] for s in t["statuses"] if s["state"] == "TASK_RUNNING"]
        ports = [p for lo, hi in common.parse_ranges(t["resources"].get("ports", ""))
                 for p in range(lo, hi + 1)]
        return {"id": t["id"], "appId": t["app"], "host": t["host"], "slaveId": t["agent_id"],
                "state": t["state"], "ports": ports, "stagedAt": apps.timestamp(t["launched_at"]),
                "startedAt": apps.timestamp(running[0]) if running else None,
                "version": t["version"], "ipAddresses": [], "healthCheckResults": []}

    def handle(self, req):
        if self.http_auth and _basic_auth(req) != self.http_auth:
            # Jetty's BasicAuthenticator, in front of every path, /ping too.
            resp = _jetty_error(401, "Unauthorized", req.path)
            realm = self.flags["http_realm"] or "Mesosphere"
            resp.headers["WWW-Authenticate"] = f'basic realm="{realm}"'
            return resp
        p = req.path.rstrip("/") or "/"
        if p == "/ping":
            return Response(200, "pong\n", content_type="text/plain")
        if p == "/v2/leader" and req.method == "GET":
            if not self.leader:
                return Response(404, {"message": "There is no leader"})
            return Response(200, {"leader": self.leader})
        if not self.elected:
            return self._proxy(req)
        if p == "/v2/leader" and req.method == "DELETE":
            return self._abdicate()
        with self.lock:
            resp = self._route(req, p)
        resp.headers["X-Marathon-Leader"] = f"http://{self.me}"
        return resp

    def _proxy(self, req):
        """LeaderProxyFilter: while the leadership is in flux (no leader known, or ourselves
        named but not elected) hold the request up to 11 x 250 ms, then 503; forward it to the
        leader otherwise, and say why when that fails."""
        for _ in range(11):
            if self.elected or (self.leader and self.leader != self.me):
                break
            time.sleep(0.25)
        else:
            return _jetty_error(503, "Could not determine the current leader", req.path)
        if self.elected:
            return self.handle(req)
        if f"1.1 {self.me}" in req.headers.get("X-Marathon-Via", ""):
            return _jetty_error(502, "Detected proxying loop.", req.path)
        url = f"http://{self.leader}{req.path}"
        if req.query:
            url += "?" + urllib.parse.urlencode(req.query, doseq=True)
        headers = {k: v for k, v in req.headers.items()
                   if k.lower() in ("content-type", "accept", "authorization")}
        headers["X-Marathon-Via"] = f"1.1 {self.me}"
        try:
            status, body, rheaders = common.raw_call(
                req.method, url, req.body or None, headers,
                timeout=(self.flags["leader_proxy_read_timeout"] or 10000) / 1000)
        except OSError as e:
            reason = getattr(e, "reason", e)   # urllib wraps what connect() raised
            if isinstance(reason, ConnectionRefusedError):
                # 1.4 answers 503, 1.6 502 (LeaderProxyFilter of each).
                return _jetty_error(502 if _version_at_least(VERSION, 1, 6) else 503,
                                    "Connection to leader refused.", req.path)
            if isinstance(reason, TimeoutError):
                return _jetty_error(504, "Connection to leader timed out.", req.path)
            return _jetty_error(502, "Failed to successfully establish a connection to the "
                                     "leader.", req.path)
        keep = {k: v for k, v in rheaders.items() if k.lower() in (
            "content-type", "location", "marathon-deployment-id", "x-marathon-leader")}
        keep["X-Marathon-Via"] = f"1.1 {self.me}"
        return Response(status, body, headers=keep, content_type=None)

    def _route(self, req, p):
        m = req.method
        if p == "/":
            return Response(200, f"<html><body><h1>Marathon {VERSION} (test stand-in)</h1>"
                                 f"<p>leader {self.me}</p></body></html>",
                            content_type="text/html")
        if p == "/v2/info":
            return Response(200, self._info())
        if p == "/v2/deployments" and m == "GET":
            return Response(200, list(self.deployments.values()))
        if p.startswith("/v2/deployments/"):
            if m != "DELETE":
                return _not_allowed()
            return self._cancel(p[len("/v2/deployments/"):], _flag(req, "force", False))
        if p == "/v2/tasks" and m == "GET":
            return Response(200, {"tasks": [self._task_view(t)
                                            for t in self.records.records.values()]})
        if p == "/v2/queue" and m == "GET":
            return Response(200, {"queue": self._queue()})
        if p.startswith("/v2/queue/") and p.endswith("/delay") and m == "DELETE":
            return self._reset_delay(apps.canonical_id(p[len("/v2/queue"):-len("/delay")]))
        if p == "/v2/apps":
            if m == "GET":
                return Response(200, {"apps": [self._app_view(a, _embeds(req))
                                               for a in self.apps.values()]})
            if m == "POST":
                return self._create(req)
        if p == "/v2/groups" or p.startswith("/v2/groups/"):
            base = apps.canonical_id(p[len("/v2/groups"):] or "/")
            if m == "POST":
                return self._group(req, base, create=True)
            if m == "PUT":
                return self._group(req, base, create=False)
        if p.startswith("/v2/apps/"):
            app_id = apps.canonical_id(p[len("/v2/apps"):])
            if app_id.endswith("/restart") and m == "POST":
                return self._restart(app_id[:-len("/restart")], _flag(req, "force", False))
            if app_id.endswith("/tasks") and m == "GET":
                app = self.apps.get(app_id[:-len("/tasks")])
                if app is None:
                    return _not_found(app_id[:-len("/tasks")])
                return Response(200, {"tasks": self._app_view(app, {"tasks"})["tasks"]})
            if m == "GET":
                app = self.apps.get(app_id)
                return Response(200, {"app": self._app_view(
                    app, {"tasks", "lastTaskFailure"})}) if app else _not_found(app_id)
            if m == "PUT":
                return self._update(req, app_id)
            if m == "DELETE":
                return self._destroy(app_id, _flag(req, "force", True))
        return Response(404, {"message": f"Resource not found: {p}"})

    def _parse(self, req):
        try:
            body = req.json()
        except ValueError as e:
            return None, Response(400, {"message": "Invalid JSON", "details": [
                {"path": "/", "errors": [str(e)]}]})
        if not isinstance(body, dict):
            return None, Response(422, {"message": "Object is not valid", "details": [
                {"path": "/", "errors": ["error.expected.jsobject"]}]})
        return body, None

    def _locked(self, app_ids, force):
        """409 while a deployment touches these apps, unless forced (it is then overridden)."""
        locked = self._locks(app_ids)
        if locked and not force:
            return Response(409, {
                "message": "App is locked by one or more deployments. Override with the "
                           "option '?force=true'. View details at "
                           "'/v2/deployments/<DEPLOYMENT_ID>'.",
                "deployments": [{"id": d} for d in locked]})
        return None

    def _create(self, req):
        body, error = self._parse(req)
        if error:
            return error
        details = apps.validate(body)
        if details:
            return _invalid(details)
        app = self._full(body, None)
        if app["id"] in self.apps:
            return Response(409, {"message": f"An app with id [{app['id']}] already exists."})
        dep = self._apply({app["id"]: app}, app["version"])
        return Response(201, dict(self._app_view(app), tasks=[]),
                        headers=_deployment_headers(dep, f"http://{self.me}/v2/apps{app['id']}"))

    def _update(self, req, app_id):
        body, error = self._parse(req)
        if error:
            return error
        body.setdefault("id", app_id)
        old = self.apps.get(app_id)
        if old is not None:
            locked = self._locked([app_id], _flag(req, "force", False))
            if locked:
                return locked
            # Fields not given keep their value; ?partialUpdate=false (Marathon >= 1.5)
            # replaces the whole definition, which 1.4 does not know.
            if not PARTIAL_UPDATE_PARAM or _flag(req, "partialUpdate", True):
                merged = {k: v for k, v in old.items() if k not in ("version", "versionInfo")}
                if "ports" in body:
                    merged.pop("portDefinitions", None)
                merged.update(body)
                body = merged
        details = apps.validate(body)
        if details:
            return _invalid(details)
        app = self._full(body, old)
        dep = self._apply({app_id: app}, app["version"])
        if old is None:
            return Response(201, _deployment_result(dep), headers=_deployment_headers(
                dep, f"http://{self.me}/v2/apps{app_id}"))
        return Response(200, _deployment_result(dep), headers=_deployment_headers(dep))

    def _full(self, body, old, batch=()):
        """The stored app: defaults, service ports, and versionInfo as Marathon keeps it (a
        scale moves lastScalingAt only; any other change moves lastConfigChangeAt too)."""
        app = apps.with_defaults(body)
        self._service_ports(app, old, list(batch))
        now = app["version"]
        if old is not None and apps.config_of(dict(old, versionInfo={}))[0] == \
                apps.config_of(dict(app, versionInfo={}))[0]:
            scaled = old["instances"] != app["instances"]
            app["versionInfo"] = {
                "lastScalingAt": now if scaled else old["versionInfo"]["lastScalingAt"],
                "lastConfigChangeAt": old["versionInfo"]["lastConfigChangeAt"]}
        return app

    def _restart(self, app_id, force):
        app = self.apps.get(app_id)
        if app is None:
            return _not_found(app_id)
        locked = self._locked([app_id], force)
        if locked:
            return locked
        now = apps.timestamp()
        restarted = dict(app, version=now,
                         versionInfo={"lastScalingAt": now, "lastConfigChangeAt": now})
        dep = self._apply({app_id: restarted}, now)
        return Response(200, _deployment_result(dep), headers=_deployment_headers(dep))

    def _destroy(self, app_id, force):
        if app_id not in self.apps:
            return _not_found(app_id)
        locked = self._locked([app_id], force)
        if locked:
            return locked
        dep = self._apply({app_id: None}, apps.timestamp())
        return Response(200, _deployment_result(dep), headers=_deployment_headers(dep))

    def _group(self, req, base, create):
        """POST /v2/groups (create; 409 if it exists) and PUT /v2/groups/{id} (create or
        replace: the group's apps not in the body are removed, as a GroupUpdate does)."""
        body, error = self._parse(req)
        if error:
            return error
        found, details = apps.group_apps(body, base)
        if details:
            return _invalid(details)
        group_id = apps.canonical_id(body.get("id") or base, base)
        inside = [a for a in self.apps if a.startswith(group_id.rstrip("/") + "/")]
        if create and inside:
            return Response(409, {"message": f"Group {group_id} is already created. Use PUT "
                                             f"to change this group."})
        if create and group_id in self.apps:
            return Response(409, {"message": f"An app with the path {group_id} already exists."})
        replaced = [a for a in inside if "groups" in body
                    or ("apps" in body and apps.canonical_id(a + "/..") == group_id)]
        target = {a: None for a in replaced}
        for a, app in found.items():
            target[a] = self._full(app, self.apps.get(a), [t for t in target.values() if t])
        locked = self._locked(list(target), _flag(req, "force", False))
        if locked:
            return locked
        version = apps.timestamp()
        dep = self._apply(target, version)
        if create:
            return Response(201, _deployment_result(dep), headers=_deployment_headers(
                dep, f"http://{self.me}/v2/groups{group_id}"))
        return Response(200, _deployment_result(dep), headers=_deployment_headers(dep))

    def _cancel(self, dep_id, force):
        """DELETE /v2/deployments/{id}: a new deployment back to the apps as they were, or with
        force only the end of this one (202, no body, nothing rolled back)."""
        if dep_id not in self.deployments:
            return Response(404, {"message": f"DeploymentPlan {dep_id} does not exist"})
        original, _ = self.plans[dep_id]
        if force:
            log.info("Canceling deployment [%s]", dep_id)
            del self.deployments[dep_id]
            del self.plans[dep_id]
            return Response(202, b"")
        now = apps.timestamp()
        revert = {a: None if before is None else dict(before, version=now)
                  for a, before in original.items()}
        dep = self._apply(revert, now)
        return Response(200, _deployment_result(dep), headers=_deployment_headers(dep))

    def _waiting(self, app):
        """How many of the app's instances wait to be launched."""
        return app["instances"] - sum(self._current(t, app) for t in self._counted(app))

    def _queue(self):
        now, entries = time.time(), []
        for app in self.apps.values():
            count = self._waiting(app)
            if count <= 0:
                continue
            left = self.next_launch.get(app["id"], 0) - now
            entries.append({"count": count, "since": app["version"],
                            "delay": {"timeLeftSeconds": max(0, int(left)),
                                      "overdue": left <= 0},
                            "app": self._app_view(app)})
        return entries

    def _reset_delay(self, app_id):
        app = self.apps.get(app_id)
        if app is None or self._waiting(app) <= 0:
            return Response(404, {"message": f"Application {app_id} not found in tasks queue."})
        self.next_launch.pop(app_id, None)
        return Response(204, b"")

    def _service_ports(self, app, old, batch):
        """Port 0 in portDefinitions keeps the app's service port there, else gets a free one
        from --local_port_min up (free of the other apps and of the `batch` deployed with it)."""
        taken = {d["port"] for a in list(self.apps.values()) + batch if a["id"] != app["id"]
                 for d in a["portDefinitions"]}
        candidates = iter(p for p in range(self.flags["local_port_min"],
                                           self.flags["local_port_max"]) if p not in taken)
        kept = [d["port"] for d in (old or {}).get("portDefinitions", [])]
        for i, d in enumerate(app["portDefinitions"]):
            if d["port"] == 0:
                d["port"] = kept[i] if i < len(kept) and kept[i] not in taken else next(candidates)

    def _info(self):
        f = self.flags
        return {"name": "marathon", "version": VERSION, "buildref": "standin",
                "elected": self.elected, "leader": self.leader,
                "frameworkId": self.framework_id,
                "marathon_config": {"master": f["master"], "hostname": f["hostname"],
                                    "ha": self.ha, "checkpoint": not f["disable_checkpoint"],
                                    "failover_timeout": f["failover_timeout"],
                                    "framework_name": f["framework_name"],
                                    "local_port_min": f["local_port_min"],
                                    "local_port_max": f["local_port_max"],
                                    "mesos_role": f["mesos_role"],
                                    "webui_url": f["webui_url"]},
                "zookeeper_config": {"zk": f["zk"], "zk_timeout": f["zk_timeout"],
                                     "zk_session_timeout": f["zk_session_timeout"],
                                     "zk_max_versions": f["zk_max_versions"]},
                "http_config": {"http_port": f["http_port"], "https_port": f["https_port"]},
                "event_subscriber": None}


class _ZkTasks:
    """Where the task records live: `<zk path>/state/tasks/<task id>` (JSON)."""

    def __init__(self, marathon):
        self.marathon = marathon

    def put(self, task_id, record):
        m, data = self.marathon, json.dumps(record).encode()
        try:
            m.zk.set(f"{m.path}/state/tasks/{task_id}", data)
        except NoNodeError:
            m.zk.create(f"{m.path}/state/tasks/{task_id}", data)

    def delete(self, task_id):
        m = self.marathon
        try:
            m.zk.delete(f"{m.path}/state/tasks/{task_id}")
        except NoNodeError:
            pass


def _http_credentials(value):
    """chaos' `(.+):(.+)` on --http_credentials: (user, password), or None (no auth) with the
    error it logs for anything else."""
    if value is None:
        return None
    match = re.fullmatch(r"(.+):(.+)", value, re.S)
    if not match:
        log.error("The HTTP credentials must be specified in the form of 'user:password'.")
        return None
    return match.group(1), match.group(2)


def _basic_auth(req):
    """(user, password) of a request's `Authorization: Basic ...`, as Jetty decodes it."""
    method, _, value = req.headers.get("Authorization", "").strip().partition(" ")
    if method.lower() != "basic":
        return None
    try:
        text = base64.b64decode(value.strip(), validate=True).decode("iso-8859-1")
    except ValueError:
        return None
    user, sep, password = text.partition(":")
    return (user, password) if sep else None


def _version_at_least(version, major, minor):
    return tuple(int(x) for x in version.split(".")[:2]) >= (major, minor)


def _jetty_error(status, reason, path):
    """What Marathon's Jetty answers to response.sendError(status, reason)."""
    return Response(status, f"""<html>
<head>
<meta http-equiv="Content-Type" content="text/html;charset=utf-8"/>
<title>Error {status} {reason}</title>
</head>
<body><h2>HTTP ERROR {status}</h2>
<p>Problem accessing {path}. Reason:
<pre>    {reason}</pre></p><hr><i><small>Powered by Jetty://</small></i><hr/>
</body>
</html>
""", content_type="text/html;charset=utf-8")


def _config_version(app):
    return app["versionInfo"]["lastConfigChangeAt"]


def _current_actions(dep):
    if not dep["steps"]:
        return []
    return [dict(a, readinessCheckResults=[])
            for a in dep["steps"][dep["currentStep"] - 1]["actions"]]


def _deployment_result(dep):
    return {"deploymentId": dep["id"], "version": dep["version"]}


def _deployment_headers(dep, location=None):
    headers = {"Marathon-Deployment-Id": dep["id"]}
    if location:
        headers["Location"] = location
    return headers


def _flag(req, name, default):
    """A boolean query parameter as JAX-RS reads it: "true" (any case) is true."""
    values = req.query.get(name)
    return values[0].lower() == "true" if values else default


def _embeds(req):
    """?embed=apps.tasks&embed=apps.lastTaskFailure -> {"tasks", "lastTaskFailure"}; any of
    Marathon's prefixes (apps., app., group.apps.) or none; "failures" is both."""
    found = set()
    for value in req.query.get("embed", []):
        for prefix in ("group.apps.", "apps.", "app."):
            if value.startswith(prefix):
                value = value[len(prefix):]
                break
        found |= {"failures": {"tasks", "lastTaskFailure"}}.get(value, {value})
    return found


def _invalid(details):
    return Response(422, {"message": "Object is not valid", "details": details})


def _not_allowed():
    return Response(405, {"message": "Method Not Allowed"})


def _not_found(app_id):
    return Response(404, {"message": f"App '{app_id}' does not exist"})


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        flags = load_flags(argv)
    except flagslib.FlagError as e:
        flagslib.fail(PROG, str(e), usage=False)
    if flags["help"] or flags["version"]:
        print(VERSION if flags["version"] else "Usage: marathon [options] (test stand-in)")
        return 0
    common.setup_logging(PROG)
    marathon = Marathon(flags)
    address = flags["http_address"] or "0.0.0.0"
    try:
        server = common.serve(address, flags["http_port"], marathon.handle, "marathon")
    except OSError as e:
        log.critical("Failed to bind %s:%s: %s", address, flags["http_port"], e)
        return 1
    log.info("Marathon %s listening on %s:%s as %s", VERSION, address, flags["http_port"],
             marathon.me)
    detector = zklib.MasterDetector(flags["master"])
    marathon.start()
    threading.Thread(target=_loop, args=(marathon, detector), daemon=True).start()
    common.wait_for_sigterm()
    marathon.stopping = True
    log.info("Received SIGTERM; exiting")
    server.shutdown()
    marathon.zk.stop()
    detector.stop()
    return 0


def _loop(marathon, detector):
    while not marathon.stopping:
        try:
            marathon.tick(detector)
        except Exception:
            log.exception("scheduling round failed")
        time.sleep(TICK)


if __name__ == "__main__":
    sys.exit(main())
