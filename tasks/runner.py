"""How a step meets a host: facts in one round trip, a plan, then one round trip to apply it.

    inventory → Cluster → per host: gather(step.probes) → step.plan(facts) → [Change] → apply

A `Step` is data plus two functions: `probes(ctx)` names the facts it needs (shell commands from
`tasks.shell`), `plan(ctx, facts)` is pure and returns the changes that bring the host to the
wanted state; no change means "ok". That split (pyinfra's) lets the unit tests feed recorded
facts and compare the exact commands. Hosts are worked on in parallel, one thread and one SSH
connection each; the steps of one host run in order and stop at its first failure.
"""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from fabric import Connection

from tasks import facts as facts_mod
from tasks import report, shell
from tasks.inventory import Cluster, Host


class StepError(Exception):
    """A step cannot proceed on this host; the message says why and what to run instead."""


@dataclass(frozen=True)
class Change:
    summary: str          # what an operator reads: "write /etc/mesos/zk", "restart zookeeper"
    command: str          # the shell that does it, from tasks.shell
    diff: str = ""        # for files: unified diff shown by --dry-run


@dataclass(frozen=True)
class HostContext:
    """Everything a plan may look at besides facts: the host, the cluster, its init system."""
    host: Host
    cluster: Cluster
    init: str = "systemd"


@dataclass(frozen=True)
class Step:
    name: str                                   # as typed on the command line: "write-zoo-cfg"
    roles: tuple[str, ...]                      # "master", "slave"
    probes: Callable[[HostContext], dict[str, str]]
    plan: Callable[[HostContext, dict[str, facts_mod.Probe]], list[Change]]
    check: bool = False                         # waits/verifies only: skipped in a dry run


@dataclass
class Session:
    """One host during one `fab` invocation: its connection and what we learnt of it."""
    host: Host
    cluster: Cluster
    conn: Connection
    init: str | None = None
    failed: bool = False
    planned: bool = False        # a dry run planned changes that later steps would build on

    def run(self, command: str):
        # Fabric removed "upload with sudo" and friends; a non-root login uses sudo for all.
        runner = self.conn.run if self.conn.user == "root" else self.conn.sudo
        return runner(command, hide=True, warn=True, in_stream=False)

    def context(self) -> HostContext:
        if self.init is None:
            result = self.run(shell.init_system())
            if result.failed:
                raise StepError(f"cannot detect the init system: {_tail(result.stderr)}")
            self.init = result.stdout.strip().splitlines()[-1]
        return HostContext(self.host, self.cluster, self.init)

    def gather(self, probes: dict[str, str]) -> dict[str, facts_mod.Probe]:
        if not probes:
            return {}
        result = self.run(shell.gather(probes))
        if result.failed:
            raise StepError(f"gathering facts failed: {_tail(result.stderr)}")
        return facts_mod.parse_gather(result.stdout, list(probes))


def connect(host: Host, config) -> Connection:
    """A Connection from the inventory's ssh_* values, never from DNS of the host's name."""
    kwargs = {}
    if host.settings.ssh_key_file:
        kwargs["key_filename"] = [host.settings.ssh_key_file]
    return Connection(host=host.ssh_host, port=host.ssh_port, user=host.ssh_user or None,
                      config=config, connect_timeout=15, connect_kwargs=kwargs)


def run_step(session: Session, step: Step, reporter: report.Reporter, dry_run: bool) -> bool:
    """Run one step on one host; report and return whether it succeeded."""
    name = session.host.name
    if step.check and dry_run:
        reporter.step(name, step.name, "skipped", "dry run")
        return True
    try:
        ctx = session.context()
        changes = step.plan(ctx, session.gather(step.probes(ctx)))
        if not changes:
            reporter.step(name, step.name, "ok")
            return True
        if dry_run:
            session.planned = True
            reporter.show("".join(_describe(name, step, c) for c in changes))
            reporter.step(name, step.name, "changed", "dry run: nothing was changed")
            return True
        # Each change in a subshell, so its `exit` or `trap` cannot leak into the next one.
        script = "\n".join(f"( {c.command}\n) || exit $?" for c in changes)
        result = session.run(script)
        if result.failed:
            raise StepError(f"{_tail(result.stderr) or _tail(result.stdout)} (exit {result.exited})")
        reporter.step(name, step.name, "changed", "; ".join(c.summary for c in changes))
        return True
    except StepError as exc:
        if dry_run and session.planned:
            # E.g. write-zk after an install that a dry run only planned: not a failure yet.
            reporter.step(name, step.name, "skipped", f"dry run: needs the changes above: {exc}")
            return True
        reporter.step(name, step.name, "failed", str(exc))
    except (OSError, socket.error, EOFError) as exc:
        reporter.step(name, step.name, "failed", f"cannot reach {session.host.ssh_host}:"
                      f"{session.host.ssh_port}: {exc}")
    except Exception as exc:  # paramiko raises its own types; the operator needs the text
        reporter.step(name, step.name, "failed", f"{type(exc).__name__}: {exc}")
    return False


def run_steps(sessions: list[Session], steps: list[Step], reporter: report.Reporter,
              dry_run: bool) -> bool:
    """Each host runs the steps in order, hosts in parallel. True when all hosts succeeded."""
    def one_host(session: Session) -> None:
        for step in steps:
            if session.failed:
                return
            if not run_step(session, step, reporter, dry_run):
                session.failed = True

    live = [s for s in sessions if not s.failed]
    if live:
        # Threads wait on SSH, not on the CPU: one per host, up to a bound for huge inventories.
        with ThreadPoolExecutor(max_workers=min(64, len(live))) as pool:
            list(pool.map(one_host, live))
    return not any(s.failed for s in sessions)


def _describe(host: str, step: Step, change: Change) -> str:
    text = f"{host} {step.name} would {change.summary}\n"
    if change.diff:
        text += change.diff
    return text


def _tail(text: str, lines: int = 8) -> str:
    return " | ".join(t.strip() for t in text.strip().splitlines()[-lines:] if t.strip())
