"""What a step is: named facts in, planned changes out.

A `Step` names the facts it needs (`needs(ctx)`, names from `tasks.facts`) and plans from
them (`plan(ctx, facts)`, pure): the changes that bring the host to the wanted state, none
meaning "ok". That split (pyinfra's) lets the unit tests feed facts and compare the exact
commands, and lets the planner (`tasks.plan`) plan a whole run from one gather.

A plan holds two kinds of item:
- `Change`: a command on this host, with what it does to the facts (`sets`, `forgets`), so the
  steps after it are planned on the host as the change will leave it;
- `Restart`: a service (re)start together with the changes that belong to it. Restarts are kept
  apart because they are ordered and gated across hosts (`tasks.runner`): ZooKeeper before
  mesos-master, and in time one host at a time, gated on the cluster's health.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Union

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
    (drop a checkpoint, clear the restart mark): a coordinator moves them as one."""
    service: str
    changes: tuple[Change, ...]


Planned = Union[Change, Restart]


@dataclass(frozen=True)
class Step:
    name: str                                        # as typed: "write-zoo-cfg"
    roles: tuple[str, ...]                           # "master", "slave"
    help: str                                        # one line, shown by `fab -l`
    needs: Callable[[HostContext], list[str]]        # the facts `plan` reads
    plan: Callable[[HostContext, Facts], list[Planned]]
    restarts: bool = False                           # plans `Restart`s (their gates need facts too)


@dataclass(frozen=True)
class Gate:
    """A wait between restarts on a host: e.g. ZooKeeper must serve before mesos-master
    (re)starts, since it needs the ensemble to elect a leader.

    `needed(ctx, facts, restarted, run)` decides whether to wait at all, from the host's
    snapshot, the services (re)started earlier in the run on any host, and the names of the
    hosts in the run: a gate costs time only where something was (re)started or the snapshot
    shows it is not serving, and only where the run itself can make it serve.
    """
    name: str                                        # reported like a step: "wait-zookeeper"
    summary: str                                     # "wait until ZooKeeper serves"
    needs: Callable[[HostContext], list[str]]
    needed: Callable[[HostContext, Facts, frozenset, frozenset], bool]
    command: Callable[[HostContext], str]


@dataclass(frozen=True)
class RestartGroup:
    """Services (re)started together; the groups of `RESTART_ORDER` go in order across hosts,
    each after `gate` (if any) has passed on the host."""
    services: tuple[str, ...]
    gate: Gate | None = None
