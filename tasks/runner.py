"""Apply a run: connections, one gather per host, the planned phases, gates, failures, the report.

    every host, in parallel: one gather of every fact the run needs (`plan.needs`)
    each stage (masters, then slaves): plan every host (`plan.plan_host`); read the health of
    each service it restarts (`tasks.gates`); cut into phases (`plan.schedule`); apply them:
      Together: one script per host, hosts in parallel, a barrier, then its start gate
      Roll:     batch by batch, the leader (read again each time) last: wait until the service
                can spare the batch, restart it, wait until it is back (its gate)

A stage is (roles, steps). Within a stage a host that fails stops there, and the others go on
(one host down must not hold the others back); a later stage starts only when no host of the
stage before failed, so a failed master stops the run before any slave is changed. A gate of a
roll that is not met within `gate_timeout` (a setting) stops the whole run, naming the host,
what was expected and what was seen: no further host is touched, and the restarts still owed
keep their marks on the hosts, so a re-run continues from there. A host whose plan reads a
fact that a planned change makes unknowable (after an install) has what was planned so far
applied, and those facts gathered again, in one round trip, then is planned on.

Each report line (`master2 write-zoo-cfg changed (...)`) is printed once all of that step's
changes are applied; a dry run prints the same schedule instead of applying it, with the
order of each roll as the gates see the cluster now.
"""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from fabric import Connection

from tasks import facts, plan, progress, report
from tasks.facts import Snapshot
from tasks.model import Cluster, Host
from tasks.plan import Entry, HostPlan
from tasks.step import Change, HostContext, Restart, RestartGroup, Step

APPLIED = "@@applied"
# A round trip that lasts longer than this is shown as a wait (tasks.progress): on a
# terminal in the live line, in logs as "waiting ..." and "done after N s" lines.
SHOW_WAITS_AFTER = 3.0


@dataclass(frozen=True)
class Stage:
    roles: tuple[str, ...]
    steps: tuple[Step, ...]


class HostFailed(Exception):
    """The host cannot go on: it cannot be reached, or its facts could not be read."""


@dataclass
class RoundResult:
    applied: int                 # how many of the round's changes completed
    error: str = ""              # why the next one failed ('' when all did)
    gathered: dict = field(default_factory=dict)


@dataclass
class Session:
    """One host during one `fab` invocation: its connection, its snapshot, its report."""
    host: Host
    cluster: Cluster
    conn: Connection
    snapshot: Snapshot = field(default_factory=Snapshot)
    failed: bool = False
    entries: list[Entry] = field(default_factory=list)     # not reported yet, in order

    @property
    def ctx(self) -> HostContext:
        return HostContext(self.host, self.cluster)

    def run(self, command: str):
        # Fabric removed "upload with sudo" and friends; a non-root login uses sudo for all.
        runner = self.conn.run if self.conn.user == "root" else self.conn.sudo
        return runner(command, hide=True, warn=True, in_stream=False)

    def run_round(self, changes: list[Change], gather: list[str] = ()) -> RoundResult:
        """One round trip: the changes in order, each in a subshell so its `exit` or `trap`
        cannot leak into the next, then (if they all succeeded) the facts in `gather`."""
        script = "".join(f"( {c.command}\n) || exit $?\necho {APPLIED}\n" for c in changes)
        script += facts.gather_script(gather)
        try:
            result = self.run(script)
        except (OSError, socket.error, EOFError) as exc:
            raise HostFailed(f"cannot reach {self.host.ssh_host}:{self.host.ssh_port}: {exc}")
        except Exception as exc:  # paramiko raises its own types; the operator needs the text
            raise HostFailed(f"{type(exc).__name__}: {exc}")
        lines = result.stdout.splitlines()
        applied = lines.count(APPLIED)
        if result.failed:
            output = "\n".join(line for line in lines if line != APPLIED)
            return RoundResult(applied, f"{_tail(result.stderr) or _tail(output)} (exit {result.exited})")
        try:
            return RoundResult(applied, gathered=facts.parse_gather(result.stdout, list(gather)))
        except facts.FactError as exc:
            raise HostFailed(str(exc))


def connect(host: Host, config) -> Connection:
    """A Connection from the inventory's ssh_* values, never from DNS of the host's name."""
    kwargs = {}
    if host.settings.ssh_key_file:
        kwargs["key_filename"] = [host.settings.ssh_key_file]
    return Connection(host=host.ssh_host, port=host.ssh_port, user=host.ssh_user or None,
                      config=config, connect_timeout=15, connect_kwargs=kwargs)


GATE_POLL = 0.5           # seconds between two reads of a gate
GATE_READ_TIMEOUT = 2.0   # each read of a gate (every call in it is bounded by this)


@dataclass
class Run:
    """What a run shares across its hosts: the gates' timing, the agents' batch size, and
    whether a gate stopped it (then no further host is touched)."""
    cluster: Cluster
    reporter: report.Reporter
    dry_run: bool = False
    batch: int = 0               # agents per batch; 0: a quarter of the agents, at least 1
    gate_timeout: float = 120.0  # how long a gate waits before it stops the roll
    poll: float = 0.5            # between two reads of a gate
    stopped: str = ""            # "master2 wait-zookeeper": the gate that stopped the run

    @property
    def agents_per_batch(self) -> int:
        return self.batch or max(1, len(self.cluster.slaves) // 4)


def run(sessions: list[Session], stages: list[Stage], order: tuple[RestartGroup, ...],
        reporter: report.Reporter, dry_run: bool, batch: int = 0) -> None:
    """The whole run: see the module's docstring. Failed hosts are marked in `sessions`."""
    if not sessions:
        return
    cluster = sessions[0].cluster
    ctl = Run(cluster, reporter, dry_run, batch, float(cluster.settings.gate_timeout), GATE_POLL)

    def first_stage(s: Session) -> Stage:
        return next(st for st in stages if s.host.role in st.roles)

    def gather(s: Session) -> None:
        steps = [step for st in stages if s.host.role in st.roles for step in st.steps]
        try:
            result = s.run_round([], plan.needs(s.ctx, steps))
        except HostFailed as exc:
            result = RoundResult(0, str(exc))
        if result.error:
            _fail(s, reporter, first_stage(s).steps[0].name, result.error)
        s.snapshot.update(result.gathered)

    _parallel(gather, sessions)
    for stage in stages:
        group = [s for s in sessions if s.host.role in stage.roles and not s.failed]
        plans = _parallel(lambda s: _plan(s, list(stage.steps), order, ctl), group)
        live = [(s, p) for s, p in zip(group, plans) if not s.failed]
        _carry_out(ctl, live, order)
        if ctl.stopped:
            _report_stopped(ctl, [s for s, _ in live])
            return
        if any(s.failed for s in sessions if s.host.role in stage.roles):
            return


def _carry_out(ctl: Run, live: list[tuple[Session, HostPlan]], order: tuple[RestartGroup, ...],
               gather: list[str] = (), then: str = "") -> None:
    """Schedule the planned hosts on what the gates of their restarts see now, then apply the
    schedule (a dry run prints it)."""
    hosts = [(s.ctx, p, s.snapshot) for s, p in live]
    groups = plan.restarted(hosts, order)
    sessions = [s for s, _ in live]

    def observe(group: RestartGroup):
        involved = [h.host for h, p, _ in hosts if any(
            isinstance(item, Restart) and item.service == group.service
            for _, items in p.planned for item in items)]
        return group.gate.observe(ctl.cluster, involved, GATE_READ_TIMEOUT)

    seen = dict(zip((g.service for g in groups), _parallel(observe, groups)))
    sched = plan.schedule(hosts, order, seen, ctl.agents_per_batch)
    if ctl.dry_run:
        for s, entries in zip(sessions, sched.entries):
            _report_dry(s, entries, ctl.reporter)
        _report_order(ctl, sessions, sched)
    else:
        _apply(ctl, sessions, sched, gather, then)


def _plan(s: Session, steps: list[Step], order, ctl: Run) -> HostPlan:
    """Plan the host; where a change makes facts unknowable, apply what was planned so far and
    gather those facts again, in one round trip, then plan on (a dry run cannot: it reports
    the steps it could not plan)."""
    result = plan.plan_host(s.ctx, steps, s.snapshot)
    while result.blocked and not ctl.dry_run and not s.failed:
        names = s.snapshot.missing(plan.needs(s.ctx, result.rest))
        _carry_out(ctl, [(s, HostPlan(result.planned))], order, gather=names,
                   then=result.rest[0].name)
        result = plan.plan_host(s.ctx, result.rest, s.snapshot)
    return result


def _apply(ctl: Run, sessions: list[Session], sched: plan.Schedule,
           gather: list[str] = (), then: str = "") -> None:
    """The phases, in order. With `gather`, the facts are gathered for the step `then` at the
    end, in the last phase's round trip when it is one of plain changes."""
    for s, entries in zip(sessions, sched.entries):
        s.entries = list(entries)
        _report_ready(s, ctl.reporter)
    gathered = False
    for k, phase in enumerate(sched.phases):
        if ctl.stopped:
            return
        if isinstance(phase, plan.Together):
            last = k == len(sched.phases) - 1 and bool(gather)
            todo = {i: w for i, w in phase.work.items()}
            if last:
                todo = {i: todo.get(i, []) for i in range(len(sessions))}
                gathered = True
            _round(ctl, sessions, todo, gather if last else (), then)
            if phase.waiting:
                _wait_started(ctl, sessions, phase)
        else:
            _roll(ctl, sessions, phase)
    if gather and not gathered and not ctl.stopped:
        _round(ctl, sessions, {i: [] for i in range(len(sessions))}, gather, then)


def _round(ctl: Run, sessions: list[Session], work: dict[int, list[tuple[Entry, Change]]],
           gather: list[str] = (), then: str = "") -> None:
    """One script per host of `work`, hosts in parallel (gathering `gather` at its end)."""
    def one(i: int) -> None:
        s, todo = sessions[i], work[i]
        if s.failed or not (todo or gather):
            return
        what = "; ".join(c.summary for _, c in todo) or "gather facts"
        try:
            # Shown only when it takes a while (an install).
            with progress.waiting(what, host=s.host.name, after=SHOW_WAITS_AFTER):
                result = s.run_round([c for _, c in todo], gather)
        except HostFailed as exc:
            result = RoundResult(0, str(exc))
        for entry, _ in todo[:result.applied]:
            entry.done += 1
        if result.error:
            # The change that failed, or else the gather, for the step `then`.
            blame = todo[result.applied][0].name if result.applied < len(todo) else then
            _report_ready(s, ctl.reporter, failed=(blame, result.error))
            return
        s.snapshot.update(result.gathered)
        _report_ready(s, ctl.reporter)
    _parallel(one, list(work))


# --- gates: read from here, between the rounds ---------------------------------------------------

def _poll(ctl: Run, what: str, read, judge):
    """Read (`read()`) until `judge(seen)` is None, or `ctl.gate_timeout` passes; say what is
    waited for while waiting. Returns (seen, None) when met, else (seen, what was seen last)."""
    deadline = time.monotonic() + ctl.gate_timeout
    with progress.waiting(what, after=SHOW_WAITS_AFTER) as wait:
        while True:
            seen = read()
            problem = judge(seen)
            if problem is None:
                return seen, None
            wait.update(problem)
            if time.monotonic() + ctl.poll > deadline:
                return seen, problem
            time.sleep(ctl.poll)


def _wait_started(ctl: Run, sessions: list[Session], phase: plan.Together) -> None:
    """After a service started together: its start gate on the hosts that still stand."""
    gate = phase.group.start_gate
    waiting = {i: e for i, e in phase.waiting.items() if not sessions[i].failed}
    if not waiting:
        return
    hosts = [sessions[i].host for i in waiting]
    _, problem = _poll(ctl, f"wait until {gate.expects(ctl.cluster, hosts)}",
                       lambda: gate.observe(ctl.cluster, hosts, GATE_READ_TIMEOUT),
                       lambda seen: gate.met(ctl.cluster, seen, hosts))
    for i, entry in waiting.items():
        if problem is None:
            entry.done += 1
            _report_ready(sessions[i], ctl.reporter)
        else:
            _report_ready(sessions[i], ctl.reporter, failed=(entry.name, (
                f"not met after {ctl.gate_timeout:g} s: expected "
                f"{gate.expects(ctl.cluster, [sessions[i].host])}; saw {problem}")))


def _roll(ctl: Run, sessions: list[Session], roll: plan.Roll) -> None:
    """Batch after batch: wait until the service can spare the batch, restart it, wait until
    it is back; the batch with the leader (read again each time) goes last. A gate not met
    within its timeout stops the run: no further host is touched."""
    gate, cluster = roll.group.gate, ctl.cluster
    # Hosts that failed earlier in the run are not restarted; the others of their batch are.
    remaining = [plan.Batch({i: w for i, w in b.work.items() if not sessions[i].failed},
                            {i: e for i, e in b.gates.items() if not sessions[i].failed},
                            b.keeps_tasks) for b in roll.batches]
    remaining = [b for b in remaining if b.work]
    while remaining:
        def hosts_of(b: plan.Batch) -> list[Host]:
            return [sessions[i].host for i in b.work]

        def pick(seen) -> plan.Batch:
            leader = gate.leader(cluster, seen)
            return next((b for b in remaining if leader not in {h.name for h in hosts_of(b)}),
                        remaining[0])

        every = [h for b in remaining for h in hosts_of(b)]
        before, problem = _poll(
            ctl, f"wait until {gate.service} can spare the next of "
                 f"{', '.join(h.name for h in every)}",
            lambda: gate.observe(cluster, every, GATE_READ_TIMEOUT),
            lambda seen: gate.ready(cluster, seen, hosts_of(pick(seen))))
        batch = pick(before)
        names = ", ".join(h.name for h in hosts_of(batch))
        if problem is not None:
            _stop(ctl, sessions, batch, f"{gate.service} was not restarted on {names}: after "
                  f"{ctl.gate_timeout:g} s it still could not spare it: {problem}")
            return
        remaining.remove(batch)
        _round(ctl, sessions, batch.work)
        if any(sessions[i].failed for i in batch.work):
            ctl.stopped = next(f"{sessions[i].host.name} {roll.group.service}"
                               for i in batch.work if sessions[i].failed)
            return
        hosts = hosts_of(batch)
        expects = gate.expects(cluster, hosts, batch.keeps_tasks)
        _, problem = _poll(ctl, f"wait until {expects}",
                           lambda: gate.observe(cluster, hosts, GATE_READ_TIMEOUT),
                           lambda seen: gate.back(cluster, before, seen, hosts,
                                                  batch.keeps_tasks))
        if problem is not None:
            _stop(ctl, sessions, batch, f"restarted, but after {ctl.gate_timeout:g} s: "
                  f"expected {expects}; saw {problem}")
            return
        for i, entry in batch.gates.items():
            entry.done += 1
            _report_ready(sessions[i], ctl.reporter)


def _stop(ctl: Run, sessions: list[Session], batch: plan.Batch, message: str) -> None:
    first = True
    for i, entry in batch.gates.items():
        s = sessions[i]
        if first:
            ctl.stopped = f"{s.host.name} {entry.name}"
            first = False
        _report_ready(s, ctl.reporter, failed=(entry.name, message))


def _report_stopped(ctl: Run, sessions: list[Session]) -> None:
    """What a stopped roll leaves undone, host by host; the restart marks keep it owed."""
    for s in sessions:
        if s.failed:
            continue
        for entry in s.entries:
            if not entry.error and not entry.unknown:
                ctl.reporter.step(s.host.name, entry.name, "skipped",
                                  f"not done: the run stopped at {ctl.stopped}")
        s.entries = []
    ctl.reporter.show(f"stopped at {ctl.stopped}: nothing further was restarted; the restarts "
                      f"still owed stay marked on their hosts, and a re-run continues them")


def _report_ready(s: Session, reporter: report.Reporter,
                  failed: tuple[str, str] | None = None) -> None:
    """Report the host's entries whose changes are all applied, in order; on a failure (the
    step that failed, why), up to that step, which stops the host."""
    while s.entries:
        entry = s.entries[0]
        if entry.done < len(entry.changes):
            if failed:
                _fail(s, reporter, failed[0], failed[1])
            return
        s.entries.pop(0)
        if entry.error:
            _fail(s, reporter, entry.name, entry.error)
            return
        summaries = [c.summary for c in entry.changes]
        if entry.gate:
            reporter.step(s.host.name, entry.name, "ok", changes=summaries)
        elif summaries:
            reporter.step(s.host.name, entry.name, "changed", "; ".join(summaries), changes=summaries)
        else:
            reporter.step(s.host.name, entry.name, "ok")
    if failed:
        _fail(s, reporter, failed[0], failed[1])


def _report_dry(s: Session, entries: list[Entry], reporter: report.Reporter) -> None:
    name = s.host.name
    for entry in entries:
        if entry.error:
            _fail(s, reporter, entry.name, entry.error)
            return
        if entry.unknown:
            reporter.step(name, entry.name, "skipped", f"dry run: {entry.unknown}")
            continue
        summaries = [c.summary for c in entry.changes]
        if summaries:
            reporter.show("".join(f"{name} {entry.name} would {c.summary}\n{c.diff}"
                                  for c in entry.changes))
        if entry.gate:
            reporter.step(name, entry.name, "skipped", "dry run", changes=summaries)
        elif summaries:
            reporter.step(name, entry.name, "changed", "dry run: nothing was changed",
                          changes=summaries)
        else:
            reporter.step(name, entry.name, "ok")


def _report_order(ctl: Run, sessions: list[Session], sched: plan.Schedule) -> None:
    """The order of each roll, as the gates see the cluster now."""
    for phase in sched.phases:
        if isinstance(phase, plan.Roll):
            gate = phase.group.gate
            order = [", ".join(sessions[i].host.name + " (leader)" * (
                sessions[i].host.name == phase.leader) for i in b.work) for b in phase.batches]
            how = (f"in batches of {ctl.agents_per_batch}" if phase.group.batched
                   else "one host at a time, the leader last")
            ctl.reporter.show(f"rolling restart of {gate.service}, {how}: {' -> '.join(order)}; "
                              f"before each, {gate.service} must be able to spare it, after "
                              f"each, {gate.name} (up to {ctl.gate_timeout:g} s)")


def _fail(s: Session, reporter: report.Reporter, step: str, message: str) -> None:
    s.failed = True
    s.entries = []
    reporter.step(s.host.name, step, "failed", message)


def _parallel(fn, items: list) -> list:
    if not items:
        return []
    # Threads wait on SSH, not on the CPU: one per host, up to a bound for huge inventories.
    with ThreadPoolExecutor(max_workers=min(64, len(items))) as pool:
        return list(pool.map(fn, items))


def _tail(text: str, lines: int = 8) -> str:
    return " | ".join(t.strip() for t in text.strip().splitlines()[-lines:] if t.strip())
