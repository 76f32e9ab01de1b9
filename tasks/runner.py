"""Apply a run: connections, one gather per host, the planned rounds, failures, the report.

    every host, in parallel: one gather of every fact the run needs (`plan.needs`)
    each stage (masters, then slaves): plan every host (`plan.plan_host`), cut into rounds
    (`plan.schedule`), then each round: one script per host, hosts in parallel, a barrier

A stage is (roles, steps). Within a stage a host that fails stops there, and the others go on
(one host down must not hold the others back); a later stage starts only when no host of the
stage before failed, so a failed master stops the run before any slave is changed. A host
whose plan reads a fact that a planned change makes unknowable (after an install) has what was
planned so far applied, and those facts gathered again, in one round trip, then is planned on.

Each report line (`master2 write-zoo-cfg changed (...)`) is printed once all of that step's
changes are applied; a dry run prints the same schedule instead of applying it.
"""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from fabric import Connection

from tasks import facts, plan, progress, report
from tasks.facts import Snapshot
from tasks.model import Cluster, Host
from tasks.plan import Entry, HostPlan, HostSchedule
from tasks.step import Change, HostContext, RestartGroup, Step

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


def run(sessions: list[Session], stages: list[Stage], order: tuple[RestartGroup, ...],
        reporter: report.Reporter, dry_run: bool) -> None:
    """The whole run: see the module's docstring. Failed hosts are marked in `sessions`."""
    def first_stage(s: Session) -> Stage:
        return next(st for st in stages if s.host.role in st.roles)

    def gather(s: Session) -> None:
        steps = [step for st in stages if s.host.role in st.roles for step in st.steps]
        names = plan.needs(s.ctx, steps, order)
        try:
            result = s.run_round([], names)
        except HostFailed as exc:
            result = RoundResult(0, str(exc))
        if result.error:
            _fail(s, reporter, first_stage(s).steps[0].name, result.error)
        s.snapshot.update(result.gathered)

    _parallel(gather, sessions)
    for stage in stages:
        group = [s for s in sessions if s.host.role in stage.roles and not s.failed]
        plans = _parallel(lambda s: _plan(s, list(stage.steps), order, reporter, dry_run), group)
        live = [(s, p) for s, p in zip(group, plans) if not s.failed]
        schedules = plan.schedule([(s.ctx, p, s.snapshot) for s, p in live], order)
        if dry_run:
            for (s, _), sched in zip(live, schedules):
                _report_dry(s, sched, reporter)
        else:
            _apply(list(zip((s for s, _ in live), schedules)), reporter)
        if any(s.failed for s in sessions if s.host.role in stage.roles):
            return


def _plan(s: Session, steps: list[Step], order, reporter, dry_run: bool) -> HostPlan:
    """Plan the host; where a change makes facts unknowable, apply what was planned so far and
    gather those facts again, in one round trip, then plan on (a dry run cannot: it reports
    the steps it could not plan)."""
    result = plan.plan_host(s.ctx, steps, s.snapshot)
    while result.blocked and not dry_run and not s.failed:
        done = HostPlan(result.planned)
        names = s.snapshot.missing(plan.needs(s.ctx, result.rest, order))
        [sched] = plan.schedule([(s.ctx, done, s.snapshot)], order)
        _apply([(s, sched)], reporter, gather=names, then=result.rest[0].name)
        result = plan.plan_host(s.ctx, result.rest, s.snapshot)
    return result


def _apply(hosts: list[tuple[Session, HostSchedule]], reporter: report.Reporter,
           gather: list[str] = (), then: str = "") -> None:
    """The rounds, in order; each round runs one script per host, hosts in parallel. With
    `gather`, the last round also gathers those facts for the step `then`."""
    for s, sched in hosts:
        s.entries = list(sched.entries)
        _report_ready(s, reporter)
    total = max((len(sched.rounds) for _, sched in hosts), default=0)
    for r in range(total):
        def one(item: tuple[Session, HostSchedule]) -> None:
            s, sched = item
            if s.failed:
                return
            todo = sched.rounds[r]
            names = gather if r == len(sched.rounds) - 1 else []
            if not todo and not names:
                return
            what = "; ".join(c.summary for _, c in todo) or "gather facts"
            try:
                # Shown only when it takes a while (an install, a wait for a quorum).
                with progress.waiting(what, host=s.host.name, after=SHOW_WAITS_AFTER):
                    result = s.run_round([c for _, c in todo], names)
            except HostFailed as exc:
                result = RoundResult(0, str(exc))
            for entry, _ in todo[:result.applied]:
                entry.done += 1
            if result.error:
                # The change that failed, or else the gather, for the step `then`.
                blame = todo[result.applied][0].name if result.applied < len(todo) else then
                _report_ready(s, reporter, failed=(blame, result.error))
                return
            s.snapshot.update(result.gathered)
            _report_ready(s, reporter)
        _parallel(one, hosts)


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


def _report_dry(s: Session, sched: HostSchedule, reporter: report.Reporter) -> None:
    name = s.host.name
    for entry in sched.entries:
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
