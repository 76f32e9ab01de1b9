"""Plan a run: every step of a host planned on one snapshot of it, then the rounds of the run.

    snapshot (one gather) → plan_host: step by step, each change applied to the snapshot
                          → schedule: the hosts' changes cut into rounds, restarts ordered

`plan_host` plans the steps in order on the host's `facts.Snapshot`, applying each planned
change to it, so a later step sees what an earlier one will write (and start-services sees
the restart marks the config steps will set). It stops at a step that reads a fact a planned
change made unknowable (the Marathon version after installing Marathon): the runner applies
what was planned so far, gathers those facts again in the same round trip, and plans on.

`schedule` turns the hosts' plans into rounds, one script per host and round. Plain changes go
first; restarts go in the order of the restart groups (`steps.service.RESTART_ORDER`), with
a new round, that is a barrier across hosts, after a group that (re)started something
anywhere, and the group's gate where it is needed. The dry run prints exactly these rounds,
and the real run applies them, so the two cannot differ. Restarts stay `Restart` items until
here, so a rolling order (one host at a time, the leader last, a health gate between hosts)
is a change of `schedule` alone: the steps and the runner need not know.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tasks import facts, init
from tasks.facts import FactError, Facts, Snapshot, UnknownFact
from tasks.step import Change, HostContext, Planned, Restart, RestartGroup, Step, StepError


def changes_of(item: Planned) -> tuple[Change, ...]:
    return item.changes if isinstance(item, Restart) else (item,)


def needs(ctx: HostContext, steps: list[Step], order: tuple[RestartGroup, ...]) -> list[str]:
    """Every fact the steps read on this host, and what the gates of their restarts read."""
    names = [n for step in steps for n in step.needs(ctx)]
    if any(step.restarts for step in steps):
        names += [n for group in order if group.gate for n in group.gate.needs(ctx)]
    return list(dict.fromkeys(names))


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


@dataclass
class HostSchedule:
    entries: list[Entry]                          # in report order
    rounds: list[list[tuple[Entry, Change]]]      # per round: each change and its entry


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


def schedule(hosts: list[tuple[HostContext, HostPlan, Snapshot]],
             order: tuple[RestartGroup, ...]) -> list[HostSchedule]:
    """Cut each host's plan into rounds, aligned across hosts (see the module's docstring)."""
    group_of = {svc: g for g, group in enumerate(order) for svc in group.services}
    restarted_in: list[set[str]] = [set() for _ in order]
    for _, plan, _ in hosts:
        for _, items in plan.planned:
            for item in items:
                if isinstance(item, Restart):
                    restarted_in[group_of[item.service]].add(item.service)
    # A new round, a barrier across hosts, after each group that (re)started something.
    round_of, current = [], 0
    for started in restarted_in:
        round_of.append(current)
        current += 1 if started else 0
    total = max(round_of, default=0) + 1
    run = frozenset(ctx.host.name for ctx, _, _ in hosts)

    result = []
    for ctx, plan, snapshot in hosts:
        entries = _entries(plan)
        planned = list(zip(entries, (items for _, items in plan.planned)))
        rounds: list[list[tuple[Entry, Change]]] = [[] for _ in range(total)]
        rounds[0] += [(entry, item) for entry, items in planned
                      for item in items if isinstance(item, Change)]
        started: dict[int, list[tuple[Entry, str]]] = {}
        for g, group in enumerate(order):
            in_group = [(entry, item) for entry, items in planned for item in items
                        if isinstance(item, Restart) and group_of[item.service] == g]
            if not in_group:
                continue
            r = round_of[g]
            earlier = frozenset(s for before in restarted_in[:g] for s in before)
            gate = group.gate
            if gate and gate.needed(ctx, Facts(snapshot, gate.needs(ctx)), earlier, run):
                entry = Entry(gate.name, gate=True)
                entries.insert(entries.index(in_group[0][0]), entry)
                rounds[r].append((entry, Change(gate.summary, gate.command(ctx), kind="service")))
            for entry, item in in_group:
                rounds[r] += [(entry, change) for change in item.changes]
                started.setdefault(r, []).append((entry, item.service))
        for r, services in started.items():
            # A daemon that rejects its flags exits within a second of its start: check.
            strategy = init.strategy(snapshot.read(facts.INIT))
            names = tuple(svc for _, svc in services)
            rounds[r].append((services[-1][0], Change(f"check that {', '.join(names)} stayed up",
                                                      init.verify_running(strategy, names),
                                                      kind="service")))
        for round_ in rounds:
            for entry, change in round_:
                entry.changes.append(change)
        result.append(HostSchedule(entries, rounds))
    return result
