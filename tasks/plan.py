"""Plan a run: every step of a host planned on one snapshot of it, then the phases of the run.

    snapshot (one gather) → plan_host: step by step, each change applied to the snapshot
                          → schedule: the hosts' changes cut into phases, restarts rolled

`plan_host` plans the steps in order on the host's `facts.Snapshot`, applying each planned
change to it, so a later step sees what an earlier one will write (and start-services sees
the restart marks the config steps will set). It stops at a step that reads a fact a planned
change made unknowable (the Marathon version after installing Marathon): the runner applies
what was planned so far, gathers those facts again in the same round trip, and plans on.

`schedule` turns the hosts' plans into phases. Plain changes go first, on every host at once.
Restarts follow service by service, in the order of `playbooks.RESTART_ORDER`; for each:
- where the service does not serve (stopped, a new host, ZooKeeper still standalone), it is
  (re)started on those hosts at once (`Together`, in the same round trip as the phase before
  unless that one (re)started a service others wait for: ZooKeeper), then its start gate is
  waited for where one is needed;
- where it serves, it is rolled (`Roll`): one host at a time (agents: a batch at a time), the
  leader last, each behind the service's gate (`tasks.gates`): before, that the service
  survives the restart; after, that the host is back with the others.
Whether a service serves on a host, and which host leads, come from what the gates observed
before the run (`restarted` names the services to observe). The dry run prints exactly these
phases, and the real run applies them, so the two cannot differ.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tasks import facts, init
from tasks.facts import FactError, Facts, Snapshot, UnknownFact
from tasks.step import Change, HostContext, Planned, Restart, RestartGroup, Step, StepError


def changes_of(item: Planned) -> tuple[Change, ...]:
    return item.changes if isinstance(item, Restart) else (item,)


def needs(ctx: HostContext, steps: list[Step]) -> list[str]:
    """Every fact the steps read on this host."""
    return list(dict.fromkeys(n for step in steps for n in step.needs(ctx)))


@dataclass
class HostPlan:
    planned: list[tuple[Step, list[Planned]]] = field(default_factory=list)
    failed: tuple[Step, str] | None = None        # planning stopped: this step cannot proceed
    blocked: UnknownFact | None = None            # planning paused: facts to gather again
    rest: list[Step] = field(default_factory=list)   # the steps not planned yet (blocked)


def plan_host(ctx: HostContext, steps: list[Step], snapshot: Snapshot) -> HostPlan:
    """Plan `steps` in order on `snapshot`, applying each planned change to it."""
    result = HostPlan()
    for i, step in enumerate(steps):
        try:
            items = step.plan(ctx, Facts(snapshot, step.needs(ctx)))
        except UnknownFact as exc:
            result.blocked, result.rest = exc, list(steps[i:])
            return result
        except (StepError, FactError) as exc:
            result.failed = (step, str(exc))
            return result
        for item in items:
            for change in changes_of(item):
                snapshot.apply(change.sets, change.forgets, change.summary)
        result.planned.append((step, items))
    return result


@dataclass(eq=False)
class Entry:
    """One line of the report on one host: a step, or a gate that was needed."""
    name: str
    changes: list[Change] = field(default_factory=list)
    gate: bool = False
    error: str = ""          # planning failed here
    unknown: str = ""        # dry run: not planned, its facts are unknown until earlier changes
    done: int = 0            # how many of its changes are applied (the runner counts)


def _entries(plan: HostPlan) -> list[Entry]:
    """The entries of the steps that were planned, then of those that were not."""
    entries = [Entry(step.name) for step, _ in plan.planned]
    if plan.failed:
        entries.append(Entry(plan.failed[0].name, error=plan.failed[1]))
    if plan.blocked:
        first, *later = plan.rest
        entries.append(Entry(first.name, unknown=str(plan.blocked)))
        entries += [Entry(s.name, unknown=f"planned once {first.name} is") for s in later]
    return entries


@dataclass
class Together:
    """Changes applied on their hosts at once: one script per host, hosts in parallel. With
    `wait` (the start gate of `group`), the hosts in `waiting` are then waited for."""
    group: RestartGroup | None          # the last service (re)started in it; None: none
    work: dict[int, list[tuple[Entry, Change]]]         # host index -> its changes, in order
    waiting: dict[int, Entry] = field(default_factory=dict)   # host index -> its wait's entry


@dataclass
class Batch:
    """Hosts of a roll restarted at once (one master; or `--batch` agents). A host in
    `handover` first applies those changes (it stops), and waits (its entry in `handover`'s
    wait) until the others have elected a leader without it, before its `work`."""
    work: dict[int, list[tuple[Entry, Change]]]
    gates: dict[int, Entry]                             # host index -> its gate's entry
    keeps_tasks: bool = True
    handover: dict[int, tuple[list[tuple[Entry, Change]], Entry]] = field(default_factory=dict)


@dataclass
class Roll:
    """A service restarted where it serves: batch after batch, each behind the group's gate.
    The batches are in the order planned (the leader last); the runner re-reads the leader
    before each one, in case it moved."""
    group: RestartGroup
    batches: list[Batch]
    leader: str | None = None      # as seen when it was planned


@dataclass
class Schedule:
    entries: list[list[Entry]]        # per host, in report order
    phases: list[Together | Roll]


def restarted(hosts: list[tuple[HostContext, HostPlan, Snapshot]],
              order: tuple[RestartGroup, ...]) -> list[RestartGroup]:
    """The groups with a restart planned on some host: the ones whose health to read."""
    services = {item.service for _, p, _ in hosts for _, items in p.planned for item in items
                if isinstance(item, Restart)}
    return [g for g in order if g.service in services]


def schedule(hosts: list[tuple[HostContext, HostPlan, Snapshot]],
             order: tuple[RestartGroup, ...], seen: dict[str, object],
             batch: int = 1) -> Schedule:
    """The phases of a run (see the module's docstring). `seen` holds what each restarted
    group's gate observed before the run (`restarted`); `batch` is the agents' batch size."""
    entries = [_entries(p) for _, p, _ in hosts]
    planned = [list(zip(e, (items for _, items in p.planned))) for e, (_, p, _) in zip(entries, hosts)]
    plain = {i: [(entry, item) for entry, items in host for item in items
                 if isinstance(item, Change)] for i, host in enumerate(planned)}
    phases: list[Together | Roll] = [Together(None, {i: w for i, w in plain.items() if w})]
    started: dict[int, dict[int, list[str]]] = {}     # phase -> host -> services started there
    for group in order:
        restarts = {i: [(entry, item) for entry, items in host for item in items
                        if isinstance(item, Restart) and item.service == group.service]
                    for i, host in enumerate(planned)}
        restarts = {i: r for i, r in restarts.items() if r}
        if not restarts:
            continue
        cluster = hosts[0][0].cluster
        seen_now = seen[group.service]
        leader = group.gate.leader(cluster, seen_now)
        normal = {i: [(entry, change) for entry, item in r for change in item.changes]
                  for i, r in restarts.items()}
        bridged = _bridged(group, list(restarts), restarts, hosts, leader)
        work = {i: bridged.get(i, normal[i]) for i in restarts}
        rolled = [i for i in restarts
                  if group.gate.serving(cluster, seen_now, hosts[i][0].host)]
        together = [i for i in restarts if i not in rolled]
        if together:
            last = phases[-1]
            # A barrier after a service that others wait for (ZooKeeper), even where this
            # run cannot wait for it: it is (re)started everywhere before the next one is.
            if not (isinstance(last, Together) and (last.group is None
                                                    or last.group.start_gate is None)):
                last = Together(group, {})
                phases.append(last)
            last.group = group
            for i in together:
                last.work.setdefault(i, []).extend(work[i])
                started.setdefault(id(last), {}).setdefault(i, []).append(group.service)
            gate = group.start_gate
            waited = [hosts[i][0].host for i in together]
            if gate and gate.needed(cluster, seen_now, waited):
                for i in together:
                    last.waiting[i] = _wait_entry(entries[i], restarts[i][-1][0], gate.name,
                                                  gate.expects(cluster, [hosts[i][0].host]))
        if rolled:
            batches = _batches(group, rolled, work, restarts, hosts, entries, leader, batch)
            if bridged:
                _hand_over(group, batches, bridged, restarts, hosts, entries)
            phases.append(Roll(group, batches, leader))
        if bridged and leader in {hosts[i][0].host.name for i in rolled}:
            # Leadership has moved to a member on the new ports: restart the bridged ones
            # again, with their files as written.
            phases.append(Roll(group, _batches(group, list(bridged), normal, restarts, hosts,
                                               entries, None, batch)))
    for phase in phases:
        if isinstance(phase, Together):
            for i, services in started.get(id(phase), {}).items():
                # A daemon that rejects its flags exits within a second of its start: check.
                strategy = init.strategy(hosts[i][2].read(facts.INIT))
                phase.work[i].append((phase.work[i][-1][0], Change(
                    f"check that {', '.join(services)} stayed up",
                    init.verify_running(strategy, tuple(services)), kind="service")))
    for phase in phases:
        work = phase.work.items() if isinstance(phase, Together) else \
            [(i, changes) for b in phase.batches for i, changes in
             [(i, stop) for i, (stop, _) in b.handover.items()] + list(b.work.items())]
        for _, changes in work:
            for entry, change in changes:
                entry.changes.append(change)
    return Schedule(entries, phases)


def _bridged(group: RestartGroup, restarting: list[int], restarts, hosts,
             leader: str | None) -> dict[int, list[tuple[Entry, Change]]]:
    """The members that a plain restart would cut off from the leader, with the changes
    that restart them so that they rejoin it (`RestartGroup.bridge`)."""
    if group.bridge is None or leader is None:
        return {}
    cluster = hosts[0][0].cluster
    by_name = {ctx.host.name: (ctx, snapshot) for ctx, _, snapshot in hosts}
    found = {}
    for i in restarting:
        ctx, _, snapshot = hosts[i]
        if ctx.host.name != leader:
            changes = group.bridge((ctx, snapshot), by_name.get(leader, (None, None)),
                                   cluster.find(leader).myid)
            if changes:
                found[i] = [(restarts[i][0][0], change) for change in changes]
    return found


def _hand_over(group: RestartGroup, batches: list[Batch], bridged, restarts, hosts,
               entries) -> None:
    """The members restarted onto ports the bridged ones do not know yet (the leader) must
    not lead when they come back: restarted at once, the old leader rejoins the election it
    caused and, with the highest zxid and myid, wins it; the bridged followers then look for
    it on its old port and the ensemble stays without a leader until initLimit x tickTime
    passes (20 s by default) and it elects again. So such a member stops, the others elect a
    leader among themselves, and only then does it start (as a follower of that leader)."""
    cluster = hosts[0][0].cluster
    for b in batches:
        for i in [i for i in b.work if i not in bridged]:
            ctx, _, snapshot = hosts[i]
            strategy = init.strategy(snapshot.read(facts.INIT))
            step = restarts[i][0][0]
            stop = Change(f"stop {group.service}, so that the others elect a leader without it",
                          strategy.stop(group.service), kind="service")
            wait = Entry(f"hand-over-{group.service}", [Change(
                f"wait until {group.gate.expects_led_without(cluster, [ctx.host])}", "")],
                gate=True)
            entries[i].insert(entries[i].index(step) + 1, wait)
            b.handover[i] = ([(step, stop)], wait)


def _batches(group: RestartGroup, rolled: list[int], work, restarts, hosts, entries,
             leader: str | None, batch: int) -> list[Batch]:
    """The leader last (masters one by one), or the agents in batches of `batch`; each host
    restarted with its `work`, then waited for."""
    cluster = hosts[0][0].cluster
    rolled = sorted(rolled, key=lambda i: hosts[i][0].host.name == leader)
    size = max(1, batch) if group.batched else 1
    result = []
    for start in range(0, len(rolled), size):
        members = rolled[start:start + size]
        b = Batch({}, {}, keeps_tasks=all(item.keeps_tasks for i in members
                                          for _, item in restarts[i]))
        for i in members:
            b.work[i] = work[i]
            keeps = all(item.keeps_tasks for _, item in restarts[i])
            b.gates[i] = _wait_entry(entries[i], restarts[i][-1][0], group.gate.name,
                                     group.gate.expects(cluster, [hosts[i][0].host], keeps))
        result.append(b)
    return result


def _wait_entry(entries: list[Entry], step: Entry, name: str, expects: str) -> Entry:
    """A gate's report line on one host, after the step that restarts and the waits before."""
    at = entries.index(step) + 1
    while at < len(entries) and entries[at].gate:
        at += 1
    # A wait is no command on the host: the runner does it from here (`tasks.gates`).
    entry = Entry(name, [Change(f"wait until {expects}", "")], gate=True)
    entries.insert(at, entry)
    return entry
