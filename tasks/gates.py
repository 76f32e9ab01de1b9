"""The gates of a rolling restart: each service's health as its own daemons report it, read
from the control machine, judged before a host's restart (does the service survive it?) and
after it (is the host back with the others?).

    ZooKeeper     srvr on every master, mntr on the leader: before a restart and after it,
                  every member serves (follower or leader) and the leader has
                  zk_synced_followers = masters - 1
    mesos-master  /metrics/snapshot on every master: exactly one elected; after a restart the
                  host's registrar/log/recovered = 1; before one, enough other masters hold a
                  recovered replica of the log for its quorum
    Marathon      /ping and /v2/leader on every master: another master answers before a
                  restart; after it the host answers /ping and names a leader
    mesos-slave   the agent's own /metrics/snapshot (slave/registered) and the leading master's
                  /master/state: registered and active again, its running tasks the same ids

Every read goes through `tasks.status` (tasks.zk, tasks.http, tasks.marathon), bounded by a
timeout; the judgements are pure, None when met, else what was seen, naming the hosts.
"""

from __future__ import annotations

from dataclasses import dataclass

from tasks import http, status
from tasks.model import Cluster, Host
from tasks.status import Probe


def _names(hosts: list[Host]) -> str:
    return ", ".join(h.name for h in hosts)


def _seen(probe: Probe, value_text: str) -> str:
    return probe.error if probe.error else value_text


# --- ZooKeeper ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ZkSeen:
    modes: dict[str, Probe]          # master name -> srvr mode
    leader: str | None               # the member in mode leader
    mntr: Probe | None               # the leader's mntr


class ZooKeeper:
    name = "wait-zookeeper"
    service = "zookeeper"

    @staticmethod
    def serving_modes(cluster: Cluster) -> tuple[str, ...]:
        return ("leader", "follower") if len(cluster.masters) > 1 else ("standalone",)

    def observe(self, cluster: Cluster, hosts: list[Host], timeout: float) -> ZkSeen:
        modes = status.parallel({m.name: (status.zk_mode, m, timeout) for m in cluster.masters})
        leaders = [n for n, p in modes.items() if p.value == "leader"]
        leader = leaders[0] if len(leaders) == 1 else None
        mntr = None
        if leader:
            mntr = status.parallel({0: (status.zk_mntr, cluster.find(leader), timeout)})[0]
        return ZkSeen(modes, leader, mntr)

    def serving(self, cluster: Cluster, seen: ZkSeen, host: Host) -> bool:
        return seen.modes[host.name].value in self.serving_modes(cluster)

    def leader(self, cluster: Cluster, seen: ZkSeen) -> str | None:
        return seen.leader

    def not_serving(self, cluster: Cluster, seen: ZkSeen, hosts) -> list[str]:
        return [f"{h.name} {_seen(seen.modes[h.name], seen.modes[h.name].value)}"
                for h in hosts if not self.serving(cluster, seen, h)]

    def _whole(self, cluster: Cluster, seen: ZkSeen) -> str | None:
        """Every member serves, and every follower is synced with the leader."""
        problems = self.not_serving(cluster, seen, cluster.masters)
        followers = len(cluster.masters) - 1
        if followers and not problems:
            if seen.leader is None:
                problems.append("no leader")
            else:
                synced = (seen.mntr.value or {}).get("zk_synced_followers") if seen.mntr else None
                if synced != str(followers):
                    problems.append(f"leader {seen.leader} has zk_synced_followers "
                                    f"{_seen(seen.mntr, synced)}, not {followers}")
        return "; ".join(problems) or None

    def ready(self, cluster: Cluster, seen: ZkSeen, hosts: list[Host]) -> str | None:
        return self._whole(cluster, seen)

    def back(self, cluster, before, seen: ZkSeen, hosts, keeps_tasks) -> str | None:
        return "; ".join(self.not_serving(cluster, seen, hosts)) or self._whole(cluster, seen)

    def led_without(self, cluster: Cluster, seen: ZkSeen, hosts: list[Host]) -> str | None:
        """After `hosts` stopped: another member leads, and a majority of them serves."""
        names = {h.name for h in hosts}
        serving = [m.name for m in cluster.masters if self.serving(cluster, seen, m)]
        if seen.leader is None or seen.leader in names:
            return "no leader among " + ", ".join(
                f"{m.name} {_seen(seen.modes[m.name], seen.modes[m.name].value)}"
                for m in cluster.masters if m.name not in names)
        if len(serving) < len(cluster.masters) // 2 + 1:
            return f"only {', '.join(serving)} serving"
        return None

    def expects_led_without(self, cluster: Cluster, hosts: list[Host]) -> str:
        others = [m for m in cluster.masters if m not in hosts]
        return f"ZooKeeper on {_names(others)} elects a leader without {_names(hosts)}"

    def expects(self, cluster: Cluster, hosts: list[Host], keeps_tasks: bool = True) -> str:
        modes = " or ".join(self.serving_modes(cluster))
        synced = (f", and the leader's zk_synced_followers = {len(cluster.masters) - 1}"
                  if len(cluster.masters) > 1 else "")
        return f"ZooKeeper on {_names(hosts)} {modes} again{synced}"



class ZooKeeperStarts:
    """After ZooKeeper started (or restarted) together on masters where it did not serve: a
    new cluster, a replaced master. mesos-master and Marathon need the ensemble to elect their
    leaders, so they wait until these members serve; and only where a quorum can form: the
    packages' standalone servers on masters this run does not touch (the runbook's one host
    at a time) cannot make one."""
    name = "wait-zookeeper"
    service = "zookeeper"

    def __init__(self, zookeeper: ZooKeeper):
        self.zookeeper = zookeeper

    def observe(self, cluster: Cluster, hosts: list[Host], timeout: float) -> ZkSeen:
        return self.zookeeper.observe(cluster, hosts, timeout)

    def needed(self, cluster: Cluster, before: ZkSeen, hosts: list[Host]) -> bool:
        serving = self.zookeeper.serving
        others = [m for m in cluster.masters if m not in hosts and serving(cluster, before, m)]
        return len(others) + len(hosts) >= len(cluster.masters) // 2 + 1

    def met(self, cluster: Cluster, seen: ZkSeen, hosts: list[Host]) -> str | None:
        return "; ".join(self.zookeeper.not_serving(cluster, seen, hosts)) or None

    def expects(self, cluster: Cluster, hosts: list[Host]) -> str:
        modes = " or ".join(self.zookeeper.serving_modes(cluster))
        return f"ZooKeeper on {_names(hosts)} serves ({modes})"


# --- mesos-master ------------------------------------------------------------------------------

@dataclass(frozen=True)
class MesosSeen:
    metrics: dict[str, Probe]        # master name -> {"elected", "recovered"}
    zk_path: Probe | None            # the elected master's --zk path ("/mesos"); None: no leader


def _zk_path(host: Host, timeout: float) -> str:
    """The ZooKeeper path the (elected) master runs with: its --zk flag in /master/state."""
    zk = status.mesos_get(host, "/master/state", timeout).get("flags", {}).get("zk")
    if not isinstance(zk, str) or not zk.startswith("zk://"):
        raise status.BadAnswer(f"{host.name} /master/state: no zk:// URL in flags.zk ({zk!r})")
    return "/" + zk[len("zk://"):].partition("/")[2]


class MesosMaster:
    """Mesos masters elect their leader, and find each other's log replicas, under the path
    of their --zk URL. A new list of ZooKeeper servers rolls; a new path does not: a master
    restarted onto it would be alone there, elected with a log it cannot recover. So where
    the leader runs another path than the inventory's, no master counts as serving, and
    they restart together (the agents' tasks run on; they re-register when rolled)."""
    name = "wait-mesos-master"
    service = "mesos-master"

    def observe(self, cluster: Cluster, hosts: list[Host], timeout: float) -> MesosSeen:
        metrics = status.parallel({m.name: (status.mesos_metrics, m, timeout)
                                   for m in cluster.masters})
        leader = self._elected(metrics)
        zk_path = None
        if len(leader) == 1:
            zk_path = status.parallel({0: (_zk_path, cluster.find(leader[0]), timeout)})[0]
        return MesosSeen(metrics, zk_path)

    @staticmethod
    def _elected(metrics: dict[str, Probe]) -> list[str]:
        return [n for n, p in metrics.items() if p.value and p.value["elected"]]

    def serving(self, cluster: Cluster, seen: MesosSeen, host: Host) -> bool:
        return (seen.metrics[host.name].value is not None and seen.zk_path is not None
                and seen.zk_path.value == cluster.settings.zk_mesos_path)

    def leader(self, cluster: Cluster, seen: MesosSeen) -> str | None:
        elected = self._elected(seen.metrics)
        return elected[0] if len(elected) == 1 else None

    def _one_leader(self, seen: MesosSeen) -> str | None:
        elected = self._elected(seen.metrics)
        if len(elected) == 1:
            return None
        return (f"{len(elected)} masters elected ({', '.join(elected)})" if elected
                else "no master elected")

    def ready(self, cluster: Cluster, seen: MesosSeen, hosts: list[Host]) -> str | None:
        others = [m for m in cluster.masters if m not in hosts]
        metrics = seen.metrics
        recovered = [m.name for m in others if (metrics[m.name].value or {}).get("recovered")]
        problems = [self._one_leader(seen)]
        if len(recovered) < cluster.quorum:
            missing = [f"{m.name} {_seen(metrics[m.name], 'log not recovered')}"
                       for m in others if m.name not in recovered]
            problems.append(f"{len(recovered)} other masters hold a recovered log, the quorum "
                            f"is {cluster.quorum} ({'; '.join(missing)})")
        return "; ".join(p for p in problems if p) or None

    def back(self, cluster, before, seen: MesosSeen, hosts, keeps_tasks) -> str | None:
        metrics = seen.metrics
        problems = [f"{h.name} {_seen(metrics[h.name], 'registrar/log/recovered 0')}"
                    for h in hosts if not (metrics[h.name].value or {}).get("recovered")]
        problems.append(self._one_leader(seen))
        return "; ".join(p for p in problems if p) or None

    def expects(self, cluster: Cluster, hosts: list[Host], keeps_tasks: bool = True) -> str:
        return f"registrar/log/recovered = 1 on {_names(hosts)}, and exactly one master elected"



# --- Marathon ----------------------------------------------------------------------------------

def _marathon_answers(host: Host, timeout: float) -> str | None:
    """/ping, then /v2/leader on this master only: the leader it names (None: none)."""
    if not status.marathon_read(host, "ping", timeout):
        raise status.BadAnswer(f"GET {host.settings.marathon_url(host.ip)}/ping: no pong")
    return status.marathon_read(host, "leader", timeout)


class Marathon:
    name = "wait-marathon"
    service = "marathon"

    def observe(self, cluster: Cluster, hosts: list[Host], timeout: float) -> dict[str, Probe]:
        return status.parallel({m.name: (_marathon_answers, m, timeout) for m in cluster.masters})

    def serving(self, cluster: Cluster, seen, host: Host) -> bool:
        return seen[host.name].error is None

    def leader(self, cluster: Cluster, seen) -> str | None:
        named = status.marathon_leader(seen)
        return next((m.name for m in cluster.masters
                     if named == f"{m.ip}:{m.settings.marathon_port}"), None)

    def ready(self, cluster: Cluster, seen, hosts: list[Host]) -> str | None:
        others = [m for m in cluster.masters if m not in hosts]
        if others and not any(self.serving(cluster, seen, m) for m in others):
            return "no other master answers: " + "; ".join(
                f"{m.name} {seen[m.name].error}" for m in others)
        if status.marathon_leader(seen) is None:
            return "no master names a leader"
        return None

    def back(self, cluster, before, seen, hosts, keeps_tasks) -> str | None:
        problems = [f"{h.name} {seen[h.name].error or 'names no leader'}"
                    for h in hosts if seen[h.name].value is None]
        return "; ".join(problems) or None

    def expects(self, cluster: Cluster, hosts: list[Host], keeps_tasks: bool = True) -> str:
        return f"Marathon on {_names(hosts)} answers /ping and /v2/leader names a leader"



# --- Marathon on every master, before a ZooKeeper server restarts -------------------------------

class MarathonEverywhere:
    """Marathon's leader exits whenever its ZooKeeper connection is suspended (Curator's
    LeaderLatch gives up leadership): when the server its session is on restarts, and when
    ZooKeeper's leader restarts (every server stops serving during the election). A standby
    then takes over within a second or two, if there is one: an instance that exited is back
    only when its supervisor restarts it (systemd: RestartSec=20 for Marathon's unit). So
    before each ZooKeeper restart, Marathon must answer on every master. Past the gate
    timeout the restart goes ahead: Marathon's availability is not the quorum's."""
    name = "wait-marathon-everywhere"

    def observe(self, cluster: Cluster, hosts: list[Host], timeout: float):
        return MARATHON.observe(cluster, hosts, timeout)

    def ready(self, cluster: Cluster, before, seen, hosts: list[Host]) -> str | None:
        """Every Marathon that answered when the roll began (`before`) answers again: one
        that exited meanwhile is back. (A new master's is started later in the run.)"""
        running = [m for m in cluster.masters if before[m.name].error is None]
        down = [f"{m.name} {seen[m.name].error}" for m in running if seen[m.name].error]
        if down:
            return "; ".join(down)
        return None if not running or status.marathon_leader(seen) else "no master names a leader"

    def expects(self, cluster: Cluster, hosts: list[Host]) -> str:
        return "Marathon answers on every master, so that a leader lost in the restart has a successor"


# --- agents ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class AgentsSeen:
    registered: dict[str, Probe]     # agent host name -> its slave/registered (the hosts asked)
    state: Probe                     # the leading master's (agents, tasks)
    master: str | None               # which master leads


def _agent_registered(host: Host, timeout: float) -> bool:
    url = f"http://{host.ip}:{host.settings.mesos_slave_port}/metrics/snapshot"
    with http.Client() as client:
        r = client.request("GET", url, timeout=timeout)
    if r.status != 200:
        raise status.BadAnswer(f"GET {url}: HTTP {r.status}")
    return r.json_object().get("slave/registered") == 1


class Agents:
    name = "wait-mesos-slave"
    service = "mesos-slave"

    def observe(self, cluster: Cluster, hosts: list[Host], timeout: float) -> AgentsSeen:
        calls = {("agent", h.name): (_agent_registered, h, timeout) for h in hosts}
        calls.update({("master", m.name): (status.mesos_metrics, m, timeout)
                      for m in cluster.masters})
        first = status.parallel(calls)
        elected = [m for m in cluster.masters
                   if (first[("master", m.name)].value or {}).get("elected")]
        if len(elected) == 1:
            state = status.parallel({0: (status.mesos_state, elected[0], timeout)})[0]
        else:
            state = Probe(error=f"{len(elected)} masters elected" if elected
                          else "no master elected")
        return AgentsSeen({h.name: first[("agent", h.name)] for h in hosts}, state,
                          elected[0].name if len(elected) == 1 else None)

    def _active(self, seen: AgentsSeen, host: Host) -> list[dict]:
        agents, _ = seen.state.value
        return [a for a in status.agents_of(agents, host) if a["active"]]

    def _running(self, seen: AgentsSeen, host: Host) -> set[str]:
        agents, tasks = seen.state.value
        ids = {a["id"] for a in status.agents_of(agents, host)}
        return {t["id"] for t in tasks if t["agent_id"] in ids and t["state"] == "TASK_RUNNING"}

    def serving(self, cluster: Cluster, seen: AgentsSeen, host: Host) -> bool:
        return seen.state.value is not None and bool(self._active(seen, host))

    def leader(self, cluster: Cluster, seen) -> str | None:
        return None

    def ready(self, cluster: Cluster, seen: AgentsSeen, hosts: list[Host]) -> str | None:
        # Agents hold no quorum; what is needed is a master that can tell they came back.
        return None if seen.state.value is not None else f"the leading master: {seen.state.error}"

    def back(self, cluster, before: AgentsSeen, seen: AgentsSeen, hosts, keeps_tasks) -> str | None:
        if seen.state.value is None:
            return f"the leading master: {seen.state.error}"
        problems = []
        for h in hosts:
            registered = seen.registered[h.name]
            if registered.value is not True:
                problems.append(f"{h.name} {_seen(registered, 'slave/registered 0')}")
            elif not self._active(seen, h):
                problems.append(f"{h.name} not active in {seen.master}'s /master/state")
            elif keeps_tasks and before.state.value is not None:
                lost = sorted(self._running(before, h) - self._running(seen, h))
                if lost:
                    problems.append(f"{h.name} has not recovered the running tasks "
                                    f"{', '.join(lost)}")
        return "; ".join(problems) or None

    def expects(self, cluster: Cluster, hosts: list[Host], keeps_tasks: bool = True) -> str:
        return (f"the agents on {_names(hosts)} registered and active again"
                + (", with the tasks that were running (same task ids)" if keeps_tasks
                   else " (a new identity: its tasks are not recovered)"))



ZOOKEEPER, MESOS_MASTER, MARATHON, AGENTS = ZooKeeper(), MesosMaster(), Marathon(), Agents()
ZOOKEEPER_STARTS = ZooKeeperStarts(ZOOKEEPER)
MARATHON_EVERYWHERE = MarathonEverywhere()
