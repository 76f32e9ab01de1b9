"""From `fab ...` to hosts: load the inventory, pick the target hosts, run phases, report.

Fabric gives a task a `Connection` per `-H` host, or a plain Context without `-H`. With `-H`,
the name (or address) is looked up in the inventory and the connection is made from its
ssh_*/ip values, so `fab -H master1 ...` works where DNS does not know master1; without `-H`
every inventory host the step applies to is worked on. The inventory is validated before any
connection is opened.
"""

from __future__ import annotations

import atexit
import os

from fabric import Connection
from invoke.exceptions import Exit

from tasks import inventory, playbooks, progress, report, runner
from tasks.model import Cluster, Host, InventoryError
from tasks.runner import Session, Stage, connect
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


def target_hosts(c, cluster: Cluster, roles: tuple[str, ...]) -> list[Host]:
    if isinstance(c, Connection):
        try:
            host = cluster.find(c.original_host)
        except InventoryError as exc:
            raise Exit(str(exc), code=2)
        if host.role not in roles:
            raise Exit(f"{host.name} is a {host.role}; this task applies to "
                       f"{' and '.join(r + 's' for r in roles)}", code=2)
        return [host]
    return [h for h in cluster.hosts if h.role in roles]


def run_stages(c, stages: tuple[Stage, ...], *, dry_run: bool = False, batch: int = 0) -> None:
    """Run the stages on the target hosts (see `tasks.runner`); exit 1 if a host failed.
    `batch`: agents restarted at once in a roll (0: a quarter of the agents, at least 1)."""
    if batch < 0:
        raise Exit(f"--batch must be 1 or more (0: a quarter of the agents), got {batch}", code=2)
    cluster = load_cluster(c)
    roles = tuple(sorted({r for stage in stages for r in stage.roles}))
    hosts = target_hosts(c, cluster, roles)
    sessions = [Session(h, cluster, connect(h, c.config)) for h in hosts]
    try:
        runner.run(sessions, list(stages), playbooks.RESTART_ORDER, reporter(), dry_run, batch)
    finally:
        for s in sessions:
            s.conn.close()
    if any(s.failed for s in sessions):
        raise Exit(code=1)


def run_step(c, step: Step, *, dry_run: bool = False, batch: int = 0) -> None:
    run_stages(c, playbooks.step_stages(step), dry_run=dry_run, batch=batch)
