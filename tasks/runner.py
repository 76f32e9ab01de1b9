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

from tasks import facts, plan, progress, report, ssh
from tasks.facts import Snapshot
from tasks.model import Cluster, Host
from tasks.plan import Entry, HostPlan, HostSchedule
from tasks.remote import Control, Outcome, Remote, RemoteError, SshProcesses
from tasks.step import Change, HostContext, RestartGroup, Step


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
    interrupted: str = ""        # the run was interrupted: what became of the next change


@dataclass(frozen=True)
class LockRequest:
    """How a run takes each host's run lock: who it is (named to a run that finds the lock
    held), and whether to wait for another run instead of failing at once."""
    holder: str
    wait: bool = False


@dataclass
class Session:
    """One host during one `fab` invocation: its connection, its snapshot, its report."""
    host: Host
    cluster: Cluster
    conn: Connection | None
    password: str | None = field(default=None, repr=False)     # Fabric's sudo.password
    snapshot: Snapshot = field(default_factory=Snapshot)
    failed: bool = False
    interrupted: bool = False
    entries: list[Entry] = field(default_factory=list)     # not reported yet, in order
    remote: Remote | None = None
    control: Control = field(default_factory=Control)
    lock_process: object = None

    @property
    def ctx(self) -> HostContext:
        return HostContext(self.host, self.cluster)

    def open(self, lock: LockRequest | None) -> None:
        """Connect (the host key checked before anything is sent) and take the run lock."""
        if self.remote is not None:
            return
        try:
            ssh.open_verified(self.conn)
        except ssh.SshError as exc:
            raise HostFailed(str(exc)) from None
        login = "root" if self.conn.user == "root" else \
            "sudo-password" if self.password is not None else "sudo"
        self.remote = Remote(SshProcesses(self.conn), login, self.host.name, self.password,
                             on_wait=_show_wait)
        if lock is None:
            return
        try:
            self.lock_process = self.remote.hold_lock(
                lock.holder, lock.wait, self.control,
                on_held=lambda holder: progress.println(
                    f"{self.host.name}: waiting for the run lock, held by {holder}"))
        except RemoteError as exc:
            raise HostFailed(str(exc)) from None

    def close(self) -> None:
        """Release the run lock (its holder ends with its stdin) and the connection."""
        if self.lock_process is not None:
            try:
                self.lock_process.shutdown_write()
            except (OSError, EOFError):
                pass
            self.lock_process.close()
            self.lock_process = None
        if self.conn is not None:
            self.conn.close()

    def limit(self, kind: str) -> int:
        """How long a change of this kind may run on the host (the settings' *_timeout);
        apt's includes its wait for the dpkg lock."""
        s = self.host.settings
        return {"apt": s.apt_timeout + s.dpkg_lock_timeout, "service": s.service_timeout,
                "command": s.command_timeout}[kind]

    def run_round(self, changes: list[Change], gather: list[str] = ()) -> RoundResult:
        """One round trip: the changes in order, each under its time limit, then (if they all
        succeeded) the facts in `gather`."""
        units = [(c.command, self.limit(c.kind)) for c in changes]
        if gather:
            units.append((facts.gather_script(gather), self.limit("command")))
        try:
            outcome = self.remote.run(units, self.control)
        except RemoteError as exc:
            raise HostFailed(str(exc)) from None
        return _round_result(outcome, len(changes), list(gather))


def _round_result(outcome: Outcome, changes: int, gather: list[str]) -> RoundResult:
    applied = min(outcome.done, changes)
    if outcome.stopped:
        return RoundResult(applied, interrupted="not started: the run was interrupted")
    if outcome.cut:
        return RoundResult(applied, interrupted="cut off while running: the run was interrupted")
    if outcome.error:
        raise HostFailed(outcome.error)
    if outcome.status != 0:
        return RoundResult(applied, outcome.reason())
    try:
        return RoundResult(applied, gathered=facts.parse_gather(outcome.stdout, gather)
                           if gather else {})
    except facts.FactError as exc:
        raise HostFailed(str(exc))


_shown: dict[str, progress.Wait] = {}


def _show_wait(host: str, text: str | None) -> None:
    """What a host's command waits for (`@@wait` lines: the dpkg lock), on the progress board."""
    wait = _shown.get(host)
    if text is None:
        if wait is not None:
            progress.BOARD.finish(_shown.pop(host), "done")
        return
    if wait is None:
        wait = _shown[host] = progress.BOARD.start("waiting for the dpkg lock", host)
    wait.update(text)


def connect(host: Host, config) -> Connection:
    """A Connection from the inventory's ssh_* values, never from DNS of the host's name;
    its host key is checked when the session opens it (`tasks.ssh`)."""
    s = host.settings
    return ssh.connect(host.ssh_host, host.ssh_port, host.ssh_user, config,
                       key_file=s.ssh_key_file, known_hosts=s.ssh_known_hosts,
                       policy=s.ssh_host_key_policy)


def run(sessions: list[Session], stages: list[Stage], order: tuple[RestartGroup, ...],
        reporter: report.Reporter, dry_run: bool, control: Control | None = None,
        lock: LockRequest | None = None) -> None:
    """The whole run: see the module's docstring. Failed (and interrupted) hosts are marked in
    `sessions`. Once `control` says stop, no round starts on any host, and each host not done
    is reported `interrupted` at the step it stopped at."""
    control = control or Control()
    for s in sessions:
        s.control = control

    def first_step(s: Session) -> str:
        return next(st for st in stages if s.host.role in st.roles).steps[0].name

    def gather(s: Session) -> None:
        if control.stop.is_set():
            _stop(s, reporter, first_step(s), "not started: the run was interrupted")
            return
        steps = [step for st in stages if s.host.role in st.roles for step in st.steps]
        names = plan.needs(s.ctx, steps, order)
        try:
            s.open(lock)
            result = s.run_round([], names)
        except HostFailed as exc:
            result = RoundResult(0, str(exc))
        if result.interrupted:
            _stop(s, reporter, first_step(s), "not started: the run was interrupted")
        elif result.error:
            _fail(s, reporter, first_step(s), result.error)
        s.snapshot.update(result.gathered)

    _parallel(gather, sessions)
    for stage in stages:
        group = [s for s in sessions if s.host.role in stage.roles and not s.failed]
        if control.stop.is_set():
            for s in group:
                _stop(s, reporter, stage.steps[0].name, "not started: the run was interrupted")
            continue
        plans = _parallel(lambda s: _plan(s, list(stage.steps), order, reporter, dry_run), group)
        live = [(s, p) for s, p in zip(group, plans) if not s.failed]
        schedules = plan.schedule([(s.ctx, p, s.snapshot) for s, p in live], order)
        if dry_run:
            for (s, _), sched in zip(live, schedules):
                _report_dry(s, sched, reporter)
        else:
            _apply(list(zip((s for s, _ in live), schedules)), reporter, control)
        if any(s.failed and not s.interrupted for s in sessions if s.host.role in stage.roles):
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
        _apply([(s, sched)], reporter, s.control, gather=names, then=result.rest[0].name)
        result = plan.plan_host(s.ctx, result.rest, s.snapshot)
    return result


def _apply(hosts: list[tuple[Session, HostSchedule]], reporter: report.Reporter,
           control: Control, gather: list[str] = (), then: str = "") -> None:
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
            if control.stop.is_set():
                if s.entries or names:
                    step = s.entries[0].name if s.entries else then
                    _report_ready(s, reporter, ("interrupted", step, _stopped_before(
                        _next_change(s, sched, r), "not started")))
                return
            if not todo and not names:
                return
            try:
                result = s.run_round([c for _, c in todo], names)
            except HostFailed as exc:
                result = RoundResult(0, str(exc))
            for entry, _ in todo[:result.applied]:
                entry.done += 1
            if result.error or result.interrupted:
                # The change that failed, or else the gather, for the step `then`.
                pending = todo[result.applied] if result.applied < len(todo) else None
                blame = pending[0].name if pending else then
                if result.interrupted:
                    how = "cut off during" if result.interrupted.startswith("cut") else "not started"
                    stop = ("interrupted", blame, _stopped_before(
                        pending[1].summary if pending else "gathering facts", how))
                else:
                    stop = ("failed", blame, result.error)
                _report_ready(s, reporter, stop)
                return
            s.snapshot.update(result.gathered)
            _report_ready(s, reporter)
        _parallel(one, hosts)


def _next_change(s: Session, sched: HostSchedule, r: int) -> str:
    for round_ in sched.rounds[r:]:
        if round_:
            return round_[0][1].summary
    return "gathering facts"


def _stopped_before(summary: str, how: str) -> str:
    if how == "not started":
        return f"stopped before `{summary}` (the run was interrupted)"
    return f"cut off during `{summary}` (the run was interrupted)"


def _report_ready(s: Session, reporter: report.Reporter,
                  stop: tuple[str, str, str] | None = None) -> None:
    """Report the host's entries whose changes are all applied, in order; then, on a failure
    or an interruption (`stop`: its status, the step, why), that step, which stops the host."""
    while s.entries:
        entry = s.entries[0]
        if entry.done < len(entry.changes):
            break
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
    if stop is None:
        return
    status, step, detail = stop
    if status == "interrupted" and s.entries and s.entries[0].done:
        entry = s.entries[0]
        applied = "; ".join(c.summary for c in entry.changes[:entry.done])
        detail += f"; done before: {applied}"
        reporter.changes += [(s.host.name, entry.name, c.summary)
                             for c in entry.changes[:entry.done]]
    if status == "interrupted":
        _stop(s, reporter, step, detail)
    else:
        _fail(s, reporter, step, detail)


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


def _stop(s: Session, reporter: report.Reporter, step: str, message: str) -> None:
    """The host stops here because the run was interrupted (not because it failed)."""
    s.failed = s.interrupted = True
    s.entries = []
    reporter.step(s.host.name, step, "interrupted", message)


def _parallel(fn, items: list) -> list:
    if not items:
        return []
    # Threads wait on SSH, not on the CPU: one per host, up to a bound for huge inventories.
    with ThreadPoolExecutor(max_workers=min(64, len(items))) as pool:
        return list(pool.map(fn, items))

