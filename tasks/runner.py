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

Every host is reached through `tasks.remote` (host key checked, sudo, a time limit per change,
its run lock held for the run). Once the run's `Control` says stop (a signal: `tasks.cli`), no
round, batch or gate starts on any host; each host not done is reported `interrupted` at the
step it stopped at, and the owed restarts keep their marks, so a re-run continues from there.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from fabric import Connection

from tasks import facts, plan, progress, report, ssh
from tasks.facts import Snapshot
from tasks.model import Cluster, Host
from tasks.plan import Entry, HostPlan
from tasks.remote import LOST, Control, Outcome, Remote, RemoteError, SshProcesses
from tasks.step import Change, HostContext, Restart, RestartGroup, Step

# A round trip that lasts longer than this is shown as a wait (tasks.progress): on a
# terminal in the live line, in logs as "waiting ..." and "done after N s" lines.
SHOW_WAITS_AFTER = 3.0


@dataclass(frozen=True)
class Stage:
    roles: tuple[str, ...]
    steps: tuple[Step, ...]


class HostFailed(Exception):
    """The host cannot go on: unreachable, a command failed, its facts could not be read."""


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

    def open(self, lock: LockRequest | None, gather: list[str]) -> RoundResult:
        """Connect (the host key checked before anything is sent), take the run lock and
        gather the facts in `gather`: one round trip."""
        if self.remote is None:
            try:
                ssh.open_verified(self.conn)
            except ssh.SshError as exc:
                raise HostFailed(str(exc)) from None
            login = "root" if self.conn.user == "root" else \
                "sudo-password" if self.password is not None else "sudo"
            self.remote = Remote(SshProcesses(self.conn), login, self.host.name, self.password,
                                 on_wait=_show_wait)
        if lock is None:
            return self.run_round([], gather)
        try:
            outcome, self.lock_process = self.remote.run_holding_lock(
                lock.holder, lock.wait, self._units([], gather), self.control,
                on_held=lambda holder: progress.println(
                    f"{self.host.name}: waiting for the run lock, held by {holder}"))
        except RemoteError as exc:
            raise HostFailed(str(exc)) from None
        return _round_result(outcome, 0, list(gather))

    def close(self) -> None:
        """Release the run lock (its holder ends with its stdin) and the connection."""
        if self.lock_process is not None:
            try:
                self.lock_process.shutdown_write()
            except LOST:
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
        try:
            outcome = self.remote.run(self._units(changes, gather), self.control)
        except RemoteError as exc:
            raise HostFailed(str(exc)) from None
        return _round_result(outcome, len(changes), list(gather))

    def _units(self, changes: list[Change], gather: list[str]) -> list[tuple[str, int]]:
        units = [(c.command, self.limit(c.kind)) for c in changes]
        if gather:
            units.append((facts.gather_script(gather), self.limit("command")))
        return units


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
    wait.update(text[:300])     # the board escapes what it shows


def connect(host: Host, config) -> Connection:
    """A Connection from the inventory's ssh_* values, never from DNS of the host's name;
    its host key is checked when the session opens it (`tasks.ssh`)."""
    s = host.settings
    return ssh.connect(host.ssh_host, host.ssh_port, host.ssh_user, config,
                       key_file=s.ssh_key_file, known_hosts=s.ssh_known_hosts,
                       policy=s.ssh_host_key_policy)


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
    control: Control = field(default_factory=Control)   # an operator's stop or cut

    @property
    def agents_per_batch(self) -> int:
        return self.batch or max(1, len(self.cluster.slaves) // 4)


def run(sessions: list[Session], stages: list[Stage], order: tuple[RestartGroup, ...],
        reporter: report.Reporter, dry_run: bool, batch: int = 0,
        control: Control | None = None, lock: LockRequest | None = None) -> None:
    """The whole run: see the module's docstring. Failed (and interrupted) hosts are marked in
    `sessions`."""
    if not sessions:
        return
    cluster = sessions[0].cluster
    control = control or Control()
    ctl = Run(cluster, reporter, dry_run, batch, float(cluster.settings.gate_timeout), GATE_POLL,
              control=control)
    for s in sessions:
        s.control = control

    def first_step(s: Session) -> str:
        return next(st for st in stages if s.host.role in st.roles).steps[0].name

    def gather(s: Session) -> None:
        if control.stop.is_set():
            _interrupt(s, reporter, first_step(s), NOT_STARTED)
            return
        steps = [step for st in stages if s.host.role in st.roles for step in st.steps]
        try:
            result = s.open(lock, plan.needs(s.ctx, steps))
        except HostFailed as exc:
            # Given up on because of the stop (a wait for the run lock): interrupted.
            result = RoundResult(0, str(exc), interrupted=NOT_STARTED if control.stop.is_set()
                                 else "")
        if result.interrupted:
            _interrupt(s, reporter, first_step(s), NOT_STARTED)
        elif result.error:
            _fail(s, reporter, first_step(s), result.error)
        s.snapshot.update(result.gathered)

    _parallel(gather, sessions)
    for stage in stages:
        group = [s for s in sessions if s.host.role in stage.roles and not s.failed]
        if control.stop.is_set():
            for s in group:
                _interrupt(s, reporter, stage.steps[0].name, NOT_STARTED)
            continue
        plans = _parallel(lambda s: _plan(s, list(stage.steps), order, ctl), group)
        live = [(s, p) for s, p in zip(group, plans) if not s.failed]
        _carry_out(ctl, live, order)
        if ctl.stopped:
            _report_stopped(ctl, [s for s, _ in live])
            return
        if any(s.failed and not s.interrupted for s in sessions if s.host.role in stage.roles):
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
        if ctl.control.stop.is_set():
            _interrupt(s, ctl.reporter, result.rest[0].name, NOT_STARTED)
            break
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
        if ctl.control.stop.is_set():
            _interrupt_pending(ctl, sessions)
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
    if ctl.control.stop.is_set():
        _interrupt_pending(ctl, sessions)


def _round(ctl: Run, sessions: list[Session], work: dict[int, list[tuple[Entry, Change]]],
           gather: list[str] = (), then: str = "") -> None:
    """One script per host of `work`, hosts in parallel (gathering `gather` at its end)."""
    def one(i: int) -> None:
        s, todo = sessions[i], work[i]
        if s.failed or not (todo or gather) or ctl.control.stop.is_set():
            return      # after a stop, _interrupt_pending says where each host stopped
        what = "; ".join(c.summary for _, c in todo) or "gather facts"
        try:
            # Shown only when it takes a while (an install).
            with progress.waiting(what, host=s.host.name, after=SHOW_WAITS_AFTER):
                result = s.run_round([c for _, c in todo], gather)
        except HostFailed as exc:
            result = RoundResult(0, str(exc))
        for entry, _ in todo[:result.applied]:
            entry.done += 1
        pending = todo[result.applied] if result.applied < len(todo) else None
        # The change that failed, or else the gather, for the step `then`.
        blame = pending[0].name if pending else then
        if result.interrupted:
            what = f"`{pending[1].summary}`" if pending else "reading the facts"
            how = "cut off during" if result.interrupted.startswith("cut") else "stopped before"
            _report_ready(s, ctl.reporter, interrupted=(blame, f"{how} {what} ({STOPPED})"))
        elif result.error:
            _report_ready(s, ctl.reporter, failed=(blame, result.error))
        else:
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
            if time.monotonic() + ctl.poll > deadline or ctl.control.stop.wait(ctl.poll):
                return seen, problem


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
    if problem is not None and ctl.control.stop.is_set():
        return          # interrupted: the gates stay pending, reported as where it stopped
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
                            b.keeps_tasks, b.handover) for b in roll.batches]
    remaining = [b for b in remaining if b.work]
    companion = roll.group.companion
    if remaining and companion is not None:
        companion_before = companion.observe(cluster, [], GATE_READ_TIMEOUT)
    while remaining and not ctl.control.stop.is_set():
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
        if problem is not None and ctl.control.stop.is_set():
            return
        if problem is not None:
            _stop(ctl, sessions, batch, f"{gate.service} was not restarted on {names}: after "
                  f"{ctl.gate_timeout:g} s it still could not spare it: {problem}")
            return
        remaining.remove(batch)
        if companion is not None:
            _companion(ctl, companion, companion_before, hosts_of(batch))
        if batch.handover and not _hand_over(ctl, sessions, gate, batch):
            return
        _round(ctl, sessions, batch.work)
        if ctl.control.stop.is_set():
            return
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
        if problem is not None and ctl.control.stop.is_set():
            return
        if problem is not None:
            _stop(ctl, sessions, batch, f"restarted, but after {ctl.gate_timeout:g} s: "
                  f"expected {expects}; saw {problem}")
            return
        for i, entry in batch.gates.items():
            entry.done += 1
            _report_ready(sessions[i], ctl.reporter)


def _hand_over(ctl: Run, sessions: list[Session], gate, batch: plan.Batch) -> bool:
    """Stop the batch's members that hand over (`plan._hand_over`), then wait until the others
    lead without them. Not met in time: they are started all the same (a member is never left
    stopped by a failed gate) and the roll stops. False when the roll is to go no further."""
    handing = {i: h for i, h in batch.handover.items() if not sessions[i].failed}
    _round(ctl, sessions, {i: stop for i, (stop, _) in handing.items()})
    if ctl.control.stop.is_set():
        return False
    if any(sessions[i].failed for i in handing):
        ctl.stopped = next(f"{sessions[i].host.name} {gate.service}"
                           for i in handing if sessions[i].failed)
        return False
    hosts = [sessions[i].host for i in handing]
    expects = gate.expects_led_without(ctl.cluster, hosts)
    _, problem = _poll(ctl, f"wait until {expects}",
                       lambda: gate.observe(ctl.cluster, hosts, GATE_READ_TIMEOUT),
                       lambda seen: gate.led_without(ctl.cluster, seen, hosts))
    if problem is not None and ctl.control.stop.is_set():
        return False
    if problem is None:
        for i, (_, entry) in handing.items():
            entry.done += 1
            _report_ready(sessions[i], ctl.reporter)
        return True
    _round(ctl, sessions, {i: batch.work[i] for i in handing})
    for i, (_, entry) in handing.items():
        ctl.stopped = ctl.stopped or f"{sessions[i].host.name} {entry.name}"
        _report_ready(sessions[i], ctl.reporter, failed=(entry.name, (
            f"not met after {ctl.gate_timeout:g} s: expected {expects}; saw {problem}; "
            f"{gate.service} was started again on {sessions[i].host.name}")))
    return False


def _companion(ctl: Run, gate, before, hosts: list[Host]) -> None:
    """Before `hosts` restart: another service's health (`RestartGroup.companion`) as it was
    when the roll began (`before`), waited for up to the gate timeout; the restart goes ahead
    either way, saying so when it was not met."""
    _, problem = _poll(ctl, f"wait until {gate.expects(ctl.cluster, hosts)}",
                       lambda: gate.observe(ctl.cluster, hosts, GATE_READ_TIMEOUT),
                       lambda seen: gate.ready(ctl.cluster, before, seen, hosts))
    if problem is not None and not ctl.control.stop.is_set():
        ctl.reporter.show(f"{gate.name}: not met after {ctl.gate_timeout:g} s ({problem}); "
                          f"restarting {', '.join(h.name for h in hosts)} all the same")


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
                  failed: tuple[str, str] | None = None,
                  interrupted: tuple[str, str] | None = None) -> None:
    """Report the host's entries whose changes are all applied, in order; then, on a failure
    or an interruption (the step, why), that step, which stops the host."""
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
    if failed:
        _fail(s, reporter, *failed)
    elif interrupted:
        step, why = interrupted
        if s.entries and s.entries[0].done:
            done = s.entries[0].changes[:s.entries[0].done]
            why += "; done before: " + "; ".join(c.summary for c in done)
            reporter.changes += [(s.host.name, step, c.summary) for c in done]
        _interrupt(s, reporter, step, why)


def _interrupt_pending(ctl: Run, sessions: list[Session]) -> None:
    """After a stop: each host with work left says where it stopped."""
    for s in sessions:
        _report_ready(s, ctl.reporter)
        if s.failed or not s.entries:
            continue
        entry = s.entries[0]
        what = entry.changes[entry.done].summary if entry.done < len(entry.changes) else entry.name
        _report_ready(s, ctl.reporter, interrupted=(entry.name, f"stopped before `{what}` ({STOPPED})"))


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
                sessions[i].host.name == phase.leader) + " (stopped until the others lead)" * (
                i in b.handover) for i in b.work) for b in phase.batches]
            how = (f"in batches of {ctl.agents_per_batch}" if phase.group.batched
                   else "one host at a time, the leader last")
            ctl.reporter.show(f"rolling restart of {gate.service}, {how}: {' -> '.join(order)}; "
                              f"before each, {gate.service} must be able to spare it, after "
                              f"each, {gate.name} (up to {ctl.gate_timeout:g} s)")


def _fail(s: Session, reporter: report.Reporter, step: str, message: str) -> None:
    s.failed = True
    s.entries = []
    reporter.step(s.host.name, step, "failed", message)


STOPPED = "the run was interrupted"
NOT_STARTED = f"not started: {STOPPED}"


def _interrupt(s: Session, reporter: report.Reporter, step: str, message: str) -> None:
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

