"""What a step is: named facts in, planned changes out.

A `Step` names the facts it needs (`needs(ctx)`, names from `tasks.facts`) and plans from
them (`plan(ctx, facts)`, pure): the changes that bring the host to the wanted state, none
meaning "ok". That split (pyinfra's) lets the unit tests feed facts and compare the exact
commands, and lets the planner (`tasks.plan`) plan a whole run from one gather.

A plan holds two kinds of item:
- `Change`: a command on this host, with what it does to the facts (`sets`, `forgets`), so the
  steps after it are planned on the host as the change will leave it;
- `Restart`: a service (re)start together with the changes that belong to it. Restarts are kept
  apart because they are ordered and gated across hosts (`tasks.plan`, `tasks.runner`):
  ZooKeeper before mesos-master, one host at a time where the service serves, each behind a
  `Gate` on the cluster's health.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol, Union

from tasks.facts import Facts
from tasks.model import Cluster, Host


class StepError(Exception):
    """A step cannot proceed on this host; the message says why and what to run instead."""


@dataclass(frozen=True)
class HostContext:
    """What a plan may look at besides facts: the host and the cluster it belongs to."""
    host: Host
    cluster: Cluster


@dataclass(frozen=True)
class Change:
    summary: str          # what an operator reads: "write /etc/mesos/zk"
    command: str          # the shell that does it
    diff: str = ""        # for files: the unified diff that --dry-run shows
    # The facts as this change leaves them (name -> value), and the kinds of fact it makes
    # unknowable (`facts.CHANGED_BY_PACKAGES` for an install): see `facts.Snapshot.apply`.
    sets: dict = field(default_factory=dict, compare=False)
    forgets: tuple[str, ...] = field(default=(), compare=False)
    # Which time limit it runs under on the host (`runner.Session.limit`): "apt" (apt and
    # dpkg, long), "service" (starts, stops and waits for services) or "command".
    kind: str = "command"


@dataclass(frozen=True)
class Restart:
    """A (re)start of `service`, with the changes that must come right before and after it
    (drop a checkpoint, clear the restart mark): a coordinator moves them as one.

    `keeps_tasks`: an agent restarted with its checkpoint recovers its running tasks, and its
    gate waits for them; one whose checkpoint is dropped (a new identity) cannot."""
    service: str
    changes: tuple[Change, ...]
    keeps_tasks: bool = True


Planned = Union[Change, Restart]


@dataclass(frozen=True)
class Step:
    name: str                                        # as typed: "write-zoo-cfg"
    roles: tuple[str, ...]                           # "master", "slave"
    help: str                                        # one line, shown by `fab -l`
    needs: Callable[[HostContext], list[str]]        # the facts `plan` reads
    plan: Callable[[HostContext, Facts], list[Planned]]


class Gate(Protocol):
    """A service's health across the cluster, read from the control machine (`tasks.gates`):
    what a rolling restart of it waits for before each host's restart and after it.

    `observe` reads the service once, where it runs and on `hosts` (those about to restart, or
    just restarted), bounded in time; the other methods judge what it saw and are pure. A
    judgement is None when met, else what was seen, in words an operator can act on
    ("master3 not serving; leader master1 has zk_synced_followers 1, not 2")."""
    name: str                  # the report line of the wait: "wait-zookeeper"
    service: str

    def observe(self, cluster: Cluster, hosts: list[Host], timeout: float): ...

    def serving(self, cluster: Cluster, seen, host: Host) -> bool:
        """The host's instance serves with the others, so restarting it takes capacity away:
        it is rolled. The others (stopped, or not part of the cluster yet) start together."""

    def leader(self, cluster: Cluster, seen) -> str | None:
        """The host that leads (restarted last), if the service has one."""

    def ready(self, cluster: Cluster, seen, hosts: list[Host]) -> str | None:
        """Restarting `hosts` now keeps the service up."""

    def back(self, cluster: Cluster, before, seen, hosts: list[Host],
             keeps_tasks: bool) -> str | None:
        """`hosts`, restarted after `before` was seen, serve again with the others."""

    def expects(self, cluster: Cluster, hosts: list[Host], keeps_tasks: bool = True) -> str:
        """What `back` waits for, in words: the dry run and a failure name it."""


class StartGate(Protocol):
    """What to wait for after a service started together on hosts where it did not serve
    (a new cluster, a replaced host), before the next service (re)starts."""
    name: str

    def observe(self, cluster: Cluster, hosts: list[Host], timeout: float): ...

    def needed(self, cluster: Cluster, before, hosts: list[Host]) -> bool:
        """Whether to wait at all: only where the wait can end (a quorum can form)."""

    def met(self, cluster: Cluster, seen, hosts: list[Host]) -> str | None: ...

    def expects(self, cluster: Cluster, hosts: list[Host]) -> str: ...


@dataclass(frozen=True)
class RestartGroup:
    """One service's restarts across hosts, in the order of `RESTART_ORDER`: where it serves,
    one host at a time (`batched`: a batch at a time), the leader last, each behind `gate`;
    where it does not, all together first, then `start_gate` if any."""
    service: str
    gate: Gate
    start_gate: StartGate | None = None
    batched: bool = False
    # (host, leader, leader's myid) -> the changes that restart the host so that it rejoins
    # the leader before the leader restarts, or None when a plain restart does: see
    # `steps.config.zoo_cfg_bridge`. The host's restart then stays owed, for a second pass.
    # The members not bridged (the leader) hand over first (`plan._hand_over`): the gate then
    # has led_without(cluster, seen, hosts) and expects_led_without(cluster, hosts).
    bridge: Callable | None = None
    # Another service's health to wait for before each host's restart, as it was when the
    # roll began, without stopping the roll when it does not come back (Marathon's standbys
    # before a ZooKeeper restart): observe(), ready(cluster, before, seen, hosts), expects().
    companion: object | None = None
