"""From `fab ...` to hosts: load the inventory, pick the target hosts, run phases, report.

Fabric gives a task a `Connection` per `-H` host, or a plain Context without `-H`. With `-H`,
the names (or addresses) are looked up in the inventory and the connections are made from their
ssh_*/ip values, so `fab -H master1 ...` works where DNS does not know master1; without `-H`
every inventory host the step applies to is worked on. Either way the hosts run together, in
parallel, with one recap: Fabric calls a task once per `-H` host, so the first call runs them
all and the others do nothing. The inventory is validated before any connection is opened.

SIGINT and SIGTERM stop a run: the first lets the running commands finish and starts no
other step on any host, the second cuts the running ones off, a third ends the process at
once. The run then says where each host stopped and exits 130.
"""

from __future__ import annotations

import atexit
import datetime
import getpass
import os
import signal
import socket
import sys
from contextlib import contextmanager

from fabric import Connection
from fabric.executor import Executor
from invoke.exceptions import Exit

from tasks import inventory, playbooks, progress, report, runner
from tasks.model import Cluster, Host, InventoryError
from tasks.remote import Control
from tasks.runner import LockRequest, Session, Stage, connect
from tasks.step import Step

_reporter: report.Reporter | None = None


def reporter() -> report.Reporter:
    """One reporter per process: `fab -H a,b step` calls the task once per host, and the recap
    should still come once, at the end."""
    global _reporter
    if _reporter is None:
        _reporter = report.Reporter()
        atexit.register(lambda: _reporter.counts and progress.println(_reporter.recap()))
    return _reporter


def load_cluster(c) -> Cluster:
    path = c.config.get("inventory") or inventory.default_path()
    try:
        return inventory.load(os.path.expanduser(path))
    except InventoryError as exc:
        raise Exit(f"invalid inventory, nothing was changed:\n{exc}", code=2)


def selected_hosts(c) -> list[str]:
    """The hosts of `fab -H a,b,c`, as typed. Fabric hands each call only its own host; the
    whole list is its executor's (found up the call stack), else just this call's host."""
    frame = sys._getframe(1)
    while frame is not None:
        executor = frame.f_locals.get("self")
        if isinstance(executor, Executor):
            value = executor.core[0].args.hosts.value
            return [h for h in value.split(",") if h] if value else [c.original_host]
        frame = frame.f_back
    return [c.original_host]


_ran: set[tuple[str, str]] = set()


def first_call(c, task: str) -> bool:
    """False when the task already ran on this -H host as part of an earlier call (the hosts
    of `-H a,b,c` run together, in the first call)."""
    if not isinstance(c, Connection):
        return True
    if (task, c.original_host) in _ran:
        return False
    _ran.update((task, h) for h in selected_hosts(c))
    return True


def target_hosts(c, cluster: Cluster, roles: tuple[str, ...]) -> list[Host]:
    if not isinstance(c, Connection):
        return [h for h in cluster.hosts if h.role in roles]
    hosts = []
    for name in selected_hosts(c):
        try:
            host = cluster.find(name)
        except InventoryError as exc:
            raise Exit(str(exc), code=2)
        if host.role not in roles:
            raise Exit(f"{host.name} is a {host.role}; this task applies to "
                       f"{' and '.join(r + 's' for r in roles)}", code=2)
        if host not in hosts:
            hosts.append(host)
    return hosts


def holder() -> str:
    """Who this run is, as another run that finds a host locked reads it."""
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"fab pid {os.getpid()} on {socket.gethostname()} (user {getpass.getuser()}), " \
           f"started {started}"


@contextmanager
def interrupts(control: Control):
    """SIGINT/SIGTERM during the block: the first stops the run, the second cuts off the
    running commands, the third ends the process at once."""
    count = 0

    def handler(signum, frame) -> None:
        nonlocal count
        count += 1
        name = signal.Signals(signum).name
        if count == 1:
            control.request_stop()
            progress.println(f"{name}: stopping: no further step starts on any host; the "
                             "running commands finish (signal again to cut them off)")
        elif count == 2:
            control.request_cut()
            progress.println(f"{name}: cutting off the running commands")
        else:
            os._exit(130)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_stages(c, stages: tuple[Stage, ...], *, dry_run: bool = False, batch: int = 0,
               wait_lock: bool = False) -> None:
    """Run the stages on the target hosts (see `tasks.runner`); exit 1 if a host failed, 130
    if the run was interrupted. `batch`: agents restarted at once in a roll (0: a quarter of
    the agents, at least 1)."""
    if not first_call(c, " ".join(step.name for stage in stages for step in stage.steps)):
        return
    if batch < 0:
        raise Exit(f"--batch must be 1 or more (0: a quarter of the agents), got {batch}", code=2)
    cluster = load_cluster(c)
    roles = tuple(sorted({r for stage in stages for r in stage.roles}))
    hosts = target_hosts(c, cluster, roles)
    password = c.config.sudo.password
    sessions = [Session(h, cluster, connect(h, c.config), password=password) for h in hosts]
    control = Control()
    try:
        with interrupts(control):
            runner.run(sessions, list(stages), playbooks.RESTART_ORDER, reporter(), dry_run,
                       batch=batch, control=control, lock=LockRequest(holder(), wait_lock))
    finally:
        for s in sessions:
            s.close()
    if control.stop.is_set():
        raise Exit("interrupted: each host's line above says where it stopped; a new run "
                   "goes on from there", code=130)
    if any(s.failed for s in sessions):
        raise Exit(code=1)


def run_step(c, step: Step, *, dry_run: bool = False, batch: int = 0,
             wait_lock: bool = False) -> None:
    run_stages(c, playbooks.step_stages(step), dry_run=dry_run, batch=batch, wait_lock=wait_lock)
