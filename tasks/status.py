"""`fab cluster-status`: the cluster's health as its own services report it, for people and for
monitoring.

Asked over the network from the control machine, read-only, in two rounds of parallel calls:
first every master (ZooKeeper `srvr`, Mesos `/metrics/snapshot`, Marathon `/v2/leader`), then
the leaders found (the ZooKeeper leader's `mntr`, the Mesos leader's `/master/state`, Marathon's
apps, deployments and launch queue). Every call is bounded by `timeout` (tasks.http, tasks.zk,
tasks.marathon), so the check ends within about 2 x timeout + 1 s whatever is down::

    report = check(cluster, timeout=3, deployment_age=600)
    print(render(report))        # or to_json(report)
    report.exit_code             # 0 healthy, 1 degraded, 2 down

The verdict (the worst finding):
- down (2): ZooKeeper has no quorum (no member leads, or more than one does); no Mesos master is
  elected, or more than one claims to be, or the elected one's replicated log is not recovered;
  no Marathon leader (none elected, or no master answers).
- degraded (1): a ZooKeeper member down, not serving or standalone, or the leader's
  zk_synced_followers below the ensemble size - 1 (or its `mntr` unreadable); a Mesos master
  unreachable or its log not recovered; an inventory agent not active, an active agent the
  inventory does not know, or the agents unreadable; a Marathon unreachable on a master, masters
  naming different leaders, or apps/deployments/queue unreadable; a deployment running longer
  than `deployment_age` (its age: this machine's clock minus the deployment's `version`
  timestamp); an app with fewer running tasks than instances, or fewer healthy ones
  when it has health checks (not counted while a deployment of the app runs: the deployment's
  age judges it); an app in launch back-off (its queue delay has time left).
- healthy (0): none of these.

`to_json` gives the same facts; its keys are stable::

    {"verdict": "healthy|degraded|down", "exit_code": 0|1|2,
     "findings": [{"severity": "degraded|down", "component": "zookeeper|mesos|marathon",
                   "subject": "master2", "message": "..."}],
     "zookeeper": {"members": {"master1": {"address", "mode", "error"}}, "leader",
                   "synced_followers", "expected_followers", "error"},
     "mesos": {"masters": {"master1": {"address", "elected", "recovered", "error"}}, "leader",
               "agents": {"active", "missing", "unknown", "error"}},
     "marathon": {"masters": {"master1": {"address", "leader", "error"}}, "leader", "error",
                  "apps": [{"id", "instances", "running", "healthy", "staged", "deploying",
                            "backoff_seconds"}],
                  "deployments": [{"id", "apps", "step", "total_steps", "age_seconds"}]}}

A value that could not be read is null, with the reason in the nearest "error".
"""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from tasks import http, zk
from tasks.model import Cluster, Host
from tasks.marathon import Marathon, MarathonError

DEFAULT_TIMEOUT = 3.0
DEFAULT_DEPLOYMENT_AGE = 600
HEALTHY, DEGRADED, DOWN = "healthy", "degraded", "down"
EXIT_CODES = {HEALTHY: 0, DEGRADED: 1, DOWN: 2}


# --- asking: two rounds of parallel, bounded calls -------------------------------------------

@dataclass(frozen=True)
class Probe:
    """One answer, or the one-line reason there is none."""
    value: object = None
    error: str | None = None


@dataclass
class Observations:
    """What the services answered, before any judgement (the input of `assess`)."""
    zk_modes: dict[str, Probe]                 # master name -> mode
    mesos_metrics: dict[str, Probe]            # master name -> {"elected", "recovered"}
    marathon_leaders: dict[str, Probe]         # master name -> "host:port" or None
    zk_mntr: Probe | None = None               # the ZooKeeper leader's mntr; None: not asked
    mesos_agents: Probe | None = None          # the Mesos leader's agents
    marathon_apps: Probe | None = None
    marathon_deployments: Probe | None = None
    marathon_queue: Probe | None = None


class BadAnswer(Exception):
    """An answer of the wrong shape (a missing metric, a field of the wrong type)."""


def _ask(call, *args) -> Probe:
    try:
        return Probe(call(*args))
    except (http.HttpError, zk.ZkError, MarathonError, BadAnswer) as exc:
        return Probe(error=" ".join(str(exc).split()))


def parallel(calls: dict) -> dict:
    """{key: (function, *args)} -> {key: Probe}, all at once (every call is bounded)."""
    if not calls:
        return {}
    with ThreadPoolExecutor(max_workers=len(calls), thread_name_prefix="status") as pool:
        futures = {key: pool.submit(_ask, *call) for key, call in calls.items()}
        return {key: f.result() for key, f in futures.items()}


def zk_mode(host: Host, timeout: float) -> str:
    return zk.mode(zk.srvr(host.ip, host.settings.zk_port, timeout=timeout))


def zk_mntr(host: Host, timeout: float) -> dict[str, str]:
    return zk.mntr(host.ip, host.settings.zk_port, timeout=timeout)


def mesos_get(host: Host, path: str, timeout: float) -> dict:
    url = f"http://{host.ip}:{host.settings.mesos_port}{path}"
    with http.Client() as client:
        r = client.request("GET", url, timeout=timeout)
    if r.status in (301, 302, 303, 307, 308):
        raise BadAnswer(f"GET {url}: HTTP {r.status} to {r.headers.get('Location', '?')[:200]} "
                         f"(not the leading master)")
    if r.status != 200:
        raise BadAnswer(f"GET {url}: HTTP {r.status} {' '.join(r.text.split())[:200]}")
    return r.json_object()


def _flag(metrics: dict, key: str, what: str) -> bool:
    """A 0/1 gauge (Mesos writes 0.0 or 1.0); anything else is not Mesos' answer."""
    if key not in metrics:
        raise BadAnswer(f"{what}: no {key!r} metric")
    value = metrics[key]
    if isinstance(value, bool) or value not in (0, 1):
        raise BadAnswer(f"{what}: {key!r} is not 0 or 1 (got {json.dumps(value)[:40]})")
    return value == 1


def mesos_metrics(host: Host, timeout: float) -> dict:
    metrics = mesos_get(host, "/metrics/snapshot", timeout)
    what = f"{host.ip}:{host.settings.mesos_port}/metrics/snapshot"
    return {"elected": _flag(metrics, "master/elected", what),
            "recovered": _flag(metrics, "registrar/log/recovered", what)}


def mesos_state(host: Host, timeout: float) -> tuple[list[dict], list[dict]]:
    """The leader's agents, [{"id", "hostname", "ip", "active"}] (ip from the agent's
    libprocess pid), and its frameworks' live tasks, [{"id", "state", "agent_id"}]."""
    state = mesos_get(host, "/master/state", timeout)
    what = f"{host.ip}:{host.settings.mesos_port}/master/state"
    slaves, frameworks = state.get("slaves"), state.get("frameworks", [])
    if not isinstance(slaves, list) or not isinstance(frameworks, list):
        raise BadAnswer(f"{what}: no list of slaves or of frameworks")
    agents = []
    for i, a in enumerate(slaves):
        if not (isinstance(a, dict) and all(isinstance(a.get(k), str)
                                            for k in ("id", "hostname", "pid"))
                and isinstance(a.get("active"), bool)):
            raise BadAnswer(f"{what}: slaves[{i}] lacks id, hostname, pid or active")
        # "slave(1)@192.0.2.51:5051"
        address = a["pid"].rpartition("@")[2].rpartition(":")[0]
        agents.append({"id": a["id"], "hostname": a["hostname"], "ip": address,
                       "active": a["active"]})
    tasks = []
    for f in frameworks:
        for t in (f.get("tasks") if isinstance(f, dict) else None) or []:
            if not (isinstance(t, dict) and all(isinstance(t.get(k), str)
                                                for k in ("id", "state", "slave_id"))):
                raise BadAnswer(f"{what}: a task lacks id, state or slave_id")
            tasks.append({"id": t["id"], "state": t["state"], "agent_id": t["slave_id"]})
    return agents, tasks


def agents_of(agents: list[dict], host: Host) -> list[dict]:
    """The agents (of `mesos_state`) that run on this inventory host: by address or name."""
    return [a for a in agents if host.ip in (a["ip"], a["hostname"]) or a["hostname"] == host.name]


def _mesos_agents(host: Host, timeout: float) -> list[dict]:
    return mesos_state(host, timeout)[0]


def quiet(*_args) -> None:
    """The Marathon client's progress lines have no place in a report (or in --json)."""


def marathon_read(host: Host, what: str, timeout: float):
    """One read from one master's Marathon (`Marathon.leader`, `.apps`, ...)."""
    with Marathon.for_masters([host], timeout=timeout, log=quiet) as client:
        return getattr(client, what)()


def collect(cluster: Cluster, timeout: float = DEFAULT_TIMEOUT) -> Observations:
    """Ask every master, then the leaders found; each call bounded by `timeout` seconds."""
    masters = {m.name: m for m in cluster.masters}
    first = parallel({
        **{("zk", n): (zk_mode, m, timeout) for n, m in masters.items()},
        **{("mesos", n): (mesos_metrics, m, timeout) for n, m in masters.items()},
        **{("marathon", n): (marathon_read, m, "leader", timeout)
           for n, m in masters.items()},
    })
    obs = Observations(
        zk_modes={n: first[("zk", n)] for n in masters},
        mesos_metrics={n: first[("mesos", n)] for n in masters},
        marathon_leaders={n: first[("marathon", n)] for n in masters})
    second = {}
    zk_leader = _zk_leader(obs.zk_modes, len(masters))
    if zk_leader:
        second["zk_mntr"] = (zk_mntr, masters[zk_leader], timeout)
    mesos_leader = _mesos_leader(obs.mesos_metrics)
    if mesos_leader:
        second["mesos_agents"] = (_mesos_agents, masters[mesos_leader], timeout)
    endpoint = _marathon_endpoint(cluster, obs.marathon_leaders)
    if endpoint:
        for what in ("apps", "deployments", "queue"):
            second[f"marathon_{what}"] = (marathon_read, endpoint, what, timeout)
    for key, probe in parallel(second).items():
        setattr(obs, key, probe)
    return obs


def _zk_leader(modes: dict[str, Probe], ensemble: int) -> str | None:
    leading = ("standalone",) if ensemble == 1 else ("leader",)
    leaders = [n for n, p in modes.items() if p.value in leading]
    return leaders[0] if len(leaders) == 1 else None


def _mesos_leader(metrics: dict[str, Probe]) -> str | None:
    elected = [n for n, p in metrics.items() if p.value and p.value["elected"]]
    return elected[0] if len(elected) == 1 else None


def marathon_leader(leaders: dict[str, Probe]) -> str | None:
    """The leader most masters name (a standby may lag behind an election by a moment)."""
    named = [p.value for p in leaders.values() if p.value]
    return max(sorted(set(named)), key=named.count) if named else None


def _marathon_endpoint(cluster: Cluster, leaders: dict[str, Probe]) -> Host | None:
    """Where to read apps: the leader itself when it is an inventory master, else any master
    that answered (a standby proxies reads to the leader)."""
    leader = marathon_leader(leaders)
    if leader is None:
        return None
    for m in cluster.masters:
        if f"{m.ip}:{m.settings.marathon_port}" == leader:
            return m
    answered = [m for m in cluster.masters if leaders[m.name].error is None]
    return answered[0]


# --- judging: pure, from the observations ----------------------------------------------------

@dataclass(frozen=True)
class Finding:
    severity: str       # DEGRADED | DOWN
    component: str      # zookeeper | mesos | marathon
    subject: str        # a master, an agent, an app, a deployment; "" for the whole component
    message: str


@dataclass
class Report:
    findings: list[Finding]
    facts: dict = field(default_factory=dict)   # zookeeper, mesos, marathon (see to_json)

    @property
    def verdict(self) -> str:
        severities = {f.severity for f in self.findings}
        return DOWN if DOWN in severities else DEGRADED if severities else HEALTHY

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]


def assess(cluster: Cluster, obs: Observations, *, deployment_age: float = DEFAULT_DEPLOYMENT_AGE,
           now: float | None = None) -> Report:
    """Judge the observations: every finding, and the facts behind them."""
    now = time.time() if now is None else now
    findings: list[Finding] = []
    facts = {"zookeeper": _assess_zookeeper(cluster, obs, findings),
             "mesos": _assess_mesos(cluster, obs, findings),
             "marathon": _assess_marathon(cluster, obs, findings, deployment_age, now)}
    return Report(findings, facts)


def _assess_zookeeper(cluster: Cluster, obs: Observations, findings: list[Finding]) -> dict:
    def find(severity, subject, message):
        findings.append(Finding(severity, "zookeeper", subject, message))

    ensemble = len(cluster.masters)
    members = {m.name: {"address": f"{m.ip}:{m.settings.zk_port}",
                        "mode": obs.zk_modes[m.name].value, "error": obs.zk_modes[m.name].error}
               for m in cluster.masters}
    leader = _zk_leader(obs.zk_modes, ensemble)
    facts = {"members": members, "leader": leader, "synced_followers": None,
             "expected_followers": ensemble - 1, "error": None}
    for name, member in members.items():
        if member["error"]:
            find(DEGRADED, name, member["error"])
        elif member["mode"] == zk.NOT_SERVING:
            find(DEGRADED, name, "not serving requests (not in a quorum)")
        elif member["mode"] == "standalone" and ensemble > 1:
            find(DEGRADED, name, f"standalone, not part of the {ensemble}-member ensemble")
    leading = [n for n, m in members.items() if m["mode"] in ("leader", "standalone")]
    if all(m["error"] for m in members.values()):
        find(DOWN, "", "no quorum: no member answered")
    elif leader is None:
        find(DOWN, "", "no quorum: " + (f"{len(leading)} members claim to lead: "
                                        f"{', '.join(leading)}" if leading else "no member leads"))
    elif ensemble > 1:
        mntr = obs.zk_mntr
        synced = mntr.value.get("zk_synced_followers") if mntr and mntr.value else None
        if mntr is None or mntr.error:
            facts["error"] = mntr.error if mntr else "mntr not asked"
            find(DEGRADED, leader, f"cannot read synced followers: {facts['error']}")
        elif synced is None or not re.fullmatch(r"[0-9]{1,6}", synced):
            facts["error"] = f"mntr has no zk_synced_followers (got {synced and synced[:20]!r})"
            find(DEGRADED, leader, facts["error"])
        else:
            facts["synced_followers"] = int(synced)
            if int(synced) < ensemble - 1:
                find(DEGRADED, leader, f"leader has {synced}/{ensemble - 1} followers synced")
    return facts


def _assess_mesos(cluster: Cluster, obs: Observations, findings: list[Finding]) -> dict:
    def find(severity, subject, message):
        findings.append(Finding(severity, "mesos", subject, message))

    masters = {}
    for m in cluster.masters:
        probe = obs.mesos_metrics[m.name]
        masters[m.name] = {"address": f"{m.ip}:{m.settings.mesos_port}",
                           "elected": probe.value["elected"] if probe.value else None,
                           "recovered": probe.value["recovered"] if probe.value else None,
                           "error": probe.error}
    leader = _mesos_leader(obs.mesos_metrics)
    for name, master in masters.items():
        if master["error"]:
            find(DEGRADED, name, master["error"])
        elif not master["recovered"]:
            find(DOWN if name == leader else DEGRADED, name,
                 ("elected but " if name == leader else "")
                 + "its replicated log is not recovered (registrar/log/recovered 0: "
                   "fewer than a quorum of log replicas?)")
    elected = [n for n, m in masters.items() if m["elected"]]
    if all(m["error"] for m in masters.values()):
        find(DOWN, "", "no leader: no master answered")
    elif not elected:
        answered = " that answered" if any(m["error"] for m in masters.values()) else ""
        find(DOWN, "", f"no leader: no master{answered} is elected")
    elif len(elected) > 1:
        find(DOWN, "", f"{len(elected)} masters claim to be elected: {', '.join(elected)}")
    agents = {"active": [], "missing": [], "unknown": [], "error": None}
    if leader is not None:
        agents = _assess_agents(cluster, obs.mesos_agents, leader, find)
    return {"masters": masters, "leader": leader, "agents": agents}


def _assess_agents(cluster: Cluster, probe: Probe | None, leader: str, find) -> dict:
    agents = {"active": [], "missing": [], "unknown": [], "error": None}
    if probe is None or probe.error:
        agents["error"] = probe.error if probe else "not asked"
        find(DEGRADED, leader, f"cannot read the agents: {agents['error']}")
        return agents
    registered = probe.value
    for slave in cluster.slaves:
        mine = agents_of(registered, slave)
        if any(a["active"] for a in mine):
            agents["active"].append(slave.name)
        else:
            agents["missing"].append(slave.name)
            find(DEGRADED, slave.name, "agent not active: " + (
                "registered but inactive (disconnected)" if mine
                else f"not registered with the leading master {leader}"))
    known = {s.ip for s in cluster.slaves} | {s.name for s in cluster.slaves}
    for a in registered:
        if a["ip"] not in known and a["hostname"] not in known:
            agents["unknown"].append(a["hostname"])
            find(DEGRADED, a["hostname"],
                 f"{'active' if a['active'] else 'inactive'} agent at {a['ip']} that the "
                 f"inventory does not know")
    return agents


def _assess_marathon(cluster: Cluster, obs: Observations, findings: list[Finding],
                     deployment_age: float, now: float) -> dict:
    def find(severity, subject, message):
        findings.append(Finding(severity, "marathon", subject, message))

    masters = {m.name: {"address": f"{m.ip}:{m.settings.marathon_port}",
                        "leader": obs.marathon_leaders[m.name].value,
                        "error": obs.marathon_leaders[m.name].error}
               for m in cluster.masters}
    leader = marathon_leader(obs.marathon_leaders)
    facts = {"masters": masters, "leader": leader, "error": None, "apps": [], "deployments": []}
    for name, master in masters.items():
        if master["error"]:
            find(DEGRADED, name, master["error"])
        elif master["leader"] and master["leader"] != leader:
            find(DEGRADED, name, f"names {master['leader']} as leader, the others {leader}")
    if all(m["error"] for m in masters.values()):
        find(DOWN, "", "no leader: no master answered")
        return facts
    if leader is None:
        find(DOWN, "", "no leader: none is elected (GET /v2/leader: 404 on every master)")
        return facts
    errors = [p.error for p in (obs.marathon_apps, obs.marathon_deployments,
                                obs.marathon_queue) if p is None or p.error]
    if errors:
        facts["error"] = "; ".join(e or "not asked" for e in errors)
        find(DEGRADED, "", f"cannot read apps, deployments or the launch queue: {facts['error']}")
    deployments = obs.marathon_deployments.value if obs.marathon_deployments else None
    for d in deployments or []:
        age = _age(d.get("version"), now)
        affected = d.get("affectedApps", [])
        facts["deployments"].append({
            "id": d.get("id"), "apps": affected,
            "step": d.get("currentStep"), "total_steps": d.get("totalSteps"),
            "age_seconds": None if age is None else round(age)})
        if age is not None and age > deployment_age:
            actions = ", ".join(f"{a.get('action')} {a.get('app')}"
                                for a in d.get("currentActions", []))
            find(DEGRADED, d["id"],
                 f"deployment of {', '.join(affected) or '?'} "
                 f"running for {age:.0f} s (over {deployment_age:g} s), step "
                 f"{d.get('currentStep', '?')}/{d.get('totalSteps', '?')}"
                 + (f": {actions}" if actions else ""))
    backoff = _backoff(obs.marathon_queue.value if obs.marathon_queue else None)
    apps = obs.marathon_apps.value if obs.marathon_apps else None
    for app in apps or []:
        facts["apps"].append(_assess_app(app, backoff, find))
    return facts


def _assess_app(app: dict, backoff: dict[str, float], find) -> dict:
    app_id = app["id"]
    instances = app.get("instances", 0)
    checked = bool(app.get("healthChecks"))
    facts = {"id": app_id, "instances": instances, "running": app.get("tasksRunning", 0),
             "healthy": app.get("tasksHealthy", 0) if checked else None,
             "staged": app.get("tasksStaged", 0), "deploying": bool(app.get("deployments")),
             "backoff_seconds": backoff.get(app_id)}
    if not facts["deploying"]:
        short = [f"{facts[k]}/{instances} tasks {k}" for k in ("running", "healthy")
                 if facts[k] is not None and facts[k] < instances]
        if short:
            find(DEGRADED, app_id, ", ".join(short))
    if app_id in backoff:
        failure = app.get("lastTaskFailure")
        why = (f"; last failure {failure.get('state', '?')} on {failure.get('host', '?')}: "
               f"{' '.join(failure.get('message', '').split())[:200]}" if failure else "")
        find(DEGRADED, app_id, f"in launch back-off, next launch in {backoff[app_id]:.0f} s{why}")
    return facts


def _backoff(queue: list[dict] | None) -> dict[str, float]:
    """{app id: seconds left} for the queue entries whose launch delay has time left."""
    waiting = {}
    for entry in queue or []:
        left = entry.get("delay", {}).get("timeLeftSeconds", 0)
        if left > 0 and "id" in entry.get("app", {}):
            waiting[entry["app"]["id"]] = float(left)
    return waiting


def _age(version, now: float) -> float | None:
    """Seconds since a Marathon timestamp ("2024-05-01T10:00:00.000Z"), or None."""
    try:
        return now - datetime.fromisoformat(str(version).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def check(cluster: Cluster, *, timeout: float = DEFAULT_TIMEOUT,
          deployment_age: float = DEFAULT_DEPLOYMENT_AGE) -> Report:
    return assess(cluster, collect(cluster, timeout), deployment_age=deployment_age)


# --- telling ---------------------------------------------------------------------------------

def to_json(report: Report) -> str:
    findings = [{"severity": f.severity, "component": f.component, "subject": f.subject,
                 "message": f.message} for f in report.findings]
    return json.dumps({"verdict": report.verdict, "exit_code": report.exit_code,
                       "findings": findings, **report.facts}, indent=2)


def render(report: Report) -> str:
    """The verdict first, one line per finding, then one summary line per component."""
    problems = len(report.findings)
    lines = [f"{report.verdict.upper()}" + (f": {problems} problem{'s' * (problems > 1)}"
                                            if problems else "")]
    order = ("zookeeper", "mesos", "marathon")   # what the next one needs comes first
    for f in sorted(report.findings, key=lambda f: (f.severity != DOWN, order.index(f.component))):
        lines.append(f"  {f.severity:<8}  {f.component:<9}  "
                     + (f"{f.subject}: " if f.subject else "") + f.message)
    zk_, mesos, marathon = (report.facts[k] for k in ("zookeeper", "mesos", "marathon"))
    modes = ", ".join(f"{n} {m['mode'] or 'unreachable'}" for n, m in zk_["members"].items())
    synced = ("" if zk_["synced_followers"] is None
              else f"; {zk_['synced_followers']}/{zk_['expected_followers']} followers synced")
    lines.append(f"zookeeper  {modes}{synced}")
    agents = mesos["agents"]
    recovered = [n for n, m in mesos["masters"].items() if m["recovered"]]
    inventory_agents = len(agents["active"]) + len(agents["missing"])
    lines.append(f"mesos      leader {mesos['leader'] or 'none'}; log recovered on "
                 f"{len(recovered)}/{len(mesos['masters'])} masters; "
                 + (f"agents active {len(agents['active'])}/{inventory_agents}"
                    + (f" ({', '.join(agents['active'])})" if agents["active"] else "")
                    if mesos["leader"] and not agents["error"] else "agents unknown"))
    apps, deployments = marathon["apps"], marathon["deployments"]
    lines.append(f"marathon   leader {marathon['leader'] or 'none'}; {len(apps)} "
                 f"app{'s' * (len(apps) != 1)}, {len(deployments)} "
                 f"deployment{'s' * (len(deployments) != 1)} running")
    return "\n".join(lines)
