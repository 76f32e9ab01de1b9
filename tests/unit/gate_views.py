"""What the gates of `tasks.gates` would read from a cluster, built without a network: the same
objects their `observe` returns, so the real judgements (serving, leader, ready, back) run on
them. `Scripted` is a real gate whose reads are answered from a script instead."""

from __future__ import annotations

from dataclasses import replace

from tasks import gates, playbooks
from tasks.status import Probe
from tasks.step import RestartGroup

REFUSED = "[Errno 111] Connection refused"


def view(cluster, service: str, serving=(), leader: str | None = None, tasks=()):
    """What `service`'s gate reads when it serves on the hosts named in `serving` (the leader:
    `leader`, else the last of them) and nowhere else; agents run `tasks` [(host, task id)]."""
    serving = list(serving)
    leader = leader or (serving[-1] if serving else None)
    masters = [m.name for m in cluster.masters]
    if service == "zookeeper":
        single = len(masters) == 1
        if not serving and not single:   # the packages' standalone servers, no ensemble yet
            return gates.ZkSeen({m: Probe("standalone") for m in masters}, None, None)
        modes = {m: Probe(error=REFUSED) for m in masters}
        for m in serving:
            modes[m] = Probe("standalone" if single else "leader" if m == leader else "follower")
        if single:
            return gates.ZkSeen(modes, None, None)
        return gates.ZkSeen(modes, leader, Probe({"zk_synced_followers": str(len(serving) - 1)}))
    if service == "mesos-master":
        return gates.MesosSeen({m: Probe({"elected": m == leader, "recovered": True})
                                if m in serving else Probe(error=REFUSED) for m in masters},
                               Probe(cluster.settings.zk_mesos_path) if leader else None)
    if service == "marathon":
        address = {m.name: f"{m.ip}:{m.settings.marathon_port}" for m in cluster.masters}
        return {m: Probe(address[leader]) if m in serving else Probe(error=REFUSED)
                for m in masters}
    if service == "mesos-slave":
        agents = [{"id": f"S{i}", "hostname": s.ip, "ip": s.ip, "active": s.name in serving}
                  for i, s in enumerate(cluster.slaves)]
        ids = {s.name: f"S{i}" for i, s in enumerate(cluster.slaves)}
        running = [{"id": t, "state": "TASK_RUNNING", "agent_id": ids[h]} for h, t in tasks]
        return gates.AgentsSeen({s.name: Probe(s.name in serving) for s in cluster.slaves},
                                Probe((agents, running)), masters[0])
    raise ValueError(service)


class Scripted:
    """A real gate whose reads come from `script(cluster, hosts)` (counted in `reads`)."""

    def __init__(self, gate, script):
        self.gate, self.script, self.reads = gate, script, 0

    def __getattr__(self, name):
        return getattr(self.gate, name)

    def observe(self, cluster, hosts, timeout):
        self.reads += 1
        return self.script(cluster, hosts)


def order(script) -> tuple[RestartGroup, ...]:
    """RESTART_ORDER with every gate (and companion) answered by `script(service, cluster,
    hosts)`: a companion reads the service it waits for (Marathon's)."""
    def scripted(g, service=None):
        return g and Scripted(g, lambda cluster, hosts: script(service or g.service, cluster,
                                                              hosts))
    return tuple(replace(group, gate=scripted(group.gate), start_gate=scripted(group.start_gate),
                         companion=scripted(group.companion, "marathon"))
                 for group in playbooks.RESTART_ORDER)


class World:
    """Where each service serves, as the fake hosts' (re)starts leave it; the gates read it.

    `restarted(host, service)` is called for each applied "start X"/"restart X": the service
    then serves there (`stopped`, for "stop X": no longer), unless the host is in `broken` (it never comes back); `leaders` names
    a service's leader (else the last host serving it); `tasks` are [(agent host, task id)]
    running, and `lost` the task ids an agent restart loses."""

    def __init__(self, cluster, serving: dict[str, set[str]] | None = None):
        self.cluster = cluster
        self.serving = {g: set(h) for g, h in (serving or {}).items()}
        self.leaders: dict[str, str] = {}
        self.broken: set[tuple[str, str]] = set()
        self.tasks: list[tuple[str, str]] = []
        self.lost: set[str] = set()
        self.log: list[tuple[str, str]] = []       # (host, service) in the order restarted

    def restarted(self, host: str, service: str) -> None:
        self.log.append((host, service))
        hosts = self.serving.setdefault(service, set())
        hosts.discard(host)
        if (host, service) not in self.broken:
            hosts.add(host)
        if self.leaders.get(service) == host:
            # A restarted leader hands over to another member.
            others = sorted(hosts - {host})
            self.leaders[service] = others[0] if others else host
        if service == "mesos-slave":
            self.tasks = [(h, t) for h, t in self.tasks if not (h == host and t in self.lost)]

    def stopped(self, host: str, service: str) -> None:
        self.serving.setdefault(service, set()).discard(host)
        if self.leaders.get(service) == host:
            others = sorted(self.serving[service])
            self.leaders[service] = others[0] if others else None

    def script(self, service, cluster, hosts):
        return view(cluster, service, sorted(self.serving.get(service, ())),
                    self.leaders.get(service), self.tasks)


def everywhere(cluster) -> dict[str, set[str]]:
    """Every service serving on every host of its role: a live cluster."""
    masters = {m.name for m in cluster.masters}
    return {"zookeeper": masters, "mesos-master": masters, "marathon": masters,
            "mesos-slave": {s.name for s in cluster.slaves}}
