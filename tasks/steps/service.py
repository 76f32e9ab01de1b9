"""Service phase: which services run where, and restarts only when owed.

Masters run zookeeper, mesos-master and marathon and never mesos-slave; slaves run mesos-slave
and never zookeeper nor mesos-master (the packages enable all of them at boot, hence the
tutorial's `.override` files). A service is restarted only when a config step marked it (its own
configuration changed, in this run or an earlier one that did not get to restart it) or when it
is not running, so a second run restarts nothing.

The restarts themselves are planned as `Restart` items and ordered across hosts by
`RESTART_ORDER`: ZooKeeper first, then mesos-master and Marathon once the ensemble serves,
and the agents.
"""

from __future__ import annotations

from tasks import facts, init, shell
from tasks.facts import Facts, Service
from tasks.step import Change, Gate, HostContext, Planned, Restart, RestartGroup, Step, StepError

RUNS = {"master": ("zookeeper", "mesos-master", "marathon"), "slave": ("mesos-slave",)}
NEVER_RUNS = {"master": ("mesos-slave",), "slave": ("zookeeper", "mesos-master")}


def _disable_needs(ctx: HostContext) -> list[str]:
    return [facts.INIT] + [facts.service(s) for s in NEVER_RUNS[ctx.host.role]]


def _disable_plan(ctx: HostContext, found: Facts) -> list[Change]:
    changes = []
    for svc in NEVER_RUNS[ctx.host.role]:
        state = found[facts.service(svc)]
        if state is None:
            continue  # e.g. a slave installed without Recommends has no zookeeper at all
        if state.enabled or state.running:
            strategy = init.strategy(found[facts.INIT])
            changes.append(Change(f"stop and disable {svc}", strategy.disable_now(svc),
                                  sets={facts.service(svc): Service(enabled=False, running=False)},
                                  kind="service"))
    return changes


DISABLE_UNUSED_SERVICES = Step(
    "disable-unused-services", ("master", "slave"),
    "Stop and disable what the role never runs (mesos-slave on masters, ...).",
    _disable_needs, _disable_plan)

# Where the agent checkpoints its identity; see `_drop_agent_checkpoint`.
AGENT_WORK_DIR_FILE = "/etc/mesos-slave/work_dir"
# A restart mark of its own, set by steps that change what the agent checkpoints as its
# identity (ip, hostname): only then is the checkpoint dropped. Other changes (a new
# /etc/mesos/zk) restart the agent but keep its id and its running tasks.
AGENT_INFO_MARK = "mesos-slave.agent-info"


def _start_needs(ctx: HostContext) -> list[str]:
    needs = [facts.INIT, facts.RESTART_MARKS] + [facts.service(s) for s in RUNS[ctx.host.role]]
    if ctx.host.role == "slave":
        needs.append(facts.file(AGENT_WORK_DIR_FILE))
    return needs


def _start_plan(ctx: HostContext, found: Facts) -> list[Planned]:
    strategy = init.strategy(found[facts.INIT])
    marks = set(found[facts.RESTART_MARKS])
    planned: list[Planned] = []
    for svc in RUNS[ctx.host.role]:
        state = found[facts.service(svc)]
        if state is None:
            raise StepError(f"{svc} is not installed on {ctx.host.name}: "
                            f"run install-{ctx.host.role} first")
        if not state.enabled:
            planned.append(Change(f"enable {svc} at boot", strategy.enable(svc),
                                  sets={facts.service(svc): Service(True, state.running)},
                                  kind="service"))
        marked = svc in marks
        if not (marked or not state.running):
            continue
        changes = []
        if marked and svc == "mesos-slave" and AGENT_INFO_MARK in marks:
            marks.discard(AGENT_INFO_MARK)
            changes += _drop_agent_checkpoint(found, frozenset(marks))
        summary = f"restart {svc} (configuration changed)" if marked else f"start {svc}"
        changes.append(Change(summary, strategy.restart(svc),
                              sets={facts.service(svc): Service(True, True)}, kind="service"))
        if marked:
            marks.discard(svc)
            changes.append(Change(f"clear the restart mark of {svc}", shell.clear_restart(svc),
                                  sets={facts.RESTART_MARKS: frozenset(marks)}))
        planned.append(Restart(svc, tuple(changes)))
    return planned


def _drop_agent_checkpoint(found: Facts, marks_after: frozenset) -> list[Change]:
    """An agent whose ip/hostname changed refuses to start ("Incompatible agent info")
    until its checkpointed identity is dropped (ansible-mesos#65)."""
    work_dir = found[facts.file(AGENT_WORK_DIR_FILE)]
    root = (work_dir.content.strip() if work_dir else "") or "/var/lib/mesos"
    latest = root.rstrip("/") + "/meta/slaves/latest"
    return [Change(f"drop the agent checkpoint {latest}", shell.remove_file(latest)),
            Change("clear the agent identity mark", shell.clear_restart(AGENT_INFO_MARK),
                   sets={facts.RESTART_MARKS: marks_after})]


START_SERVICES = Step(
    "start-services", ("master", "slave"),
    "Start the role's services; restart only those whose configuration changed.",
    _start_needs, _start_plan, restarts=True)


def _serving_modes(ctx: HostContext) -> tuple[str, ...]:
    return ("leader", "follower") if len(ctx.cluster.masters) > 1 else ("standalone",)


def _zookeeper_mode(ctx: HostContext) -> str:
    return facts.zookeeper_mode(ctx.cluster.settings.zk_port)


def _zookeeper_gate_needed(ctx: HostContext, found: Facts, restarted: frozenset,
                           run: frozenset) -> bool:
    """Wait where ZooKeeper was (re)started in this run or does not serve, if the run holds a
    majority of the masters: a run on fewer (the runbook's one host at a time) cannot form
    the ensemble by itself, and mesos-master waits for ZooKeeper on its own."""
    masters = [m.name for m in ctx.cluster.masters]
    if sum(m in run for m in masters) < len(masters) // 2 + 1:
        return False
    return "zookeeper" in restarted or found[_zookeeper_mode(ctx)] not in _serving_modes(ctx)


def _zookeeper_gate_command(ctx: HostContext) -> str:
    modes = _serving_modes(ctx)
    port = ctx.cluster.settings.zk_port
    serving = f"{facts.command(_zookeeper_mode(ctx))} | grep -qxE {shell.q('|'.join(modes))}"
    return shell.wait_until(
        serving, 90, f"ZooKeeper on {ctx.host.name} is not serving ({' or '.join(modes)}) "
                     f"after 90 s: check `echo srvr | nc {ctx.host.ip} {port}` and its log")


# mesos-master and Marathon need the ensemble to elect their leaders.
ZOOKEEPER_SERVING = Gate(
    "wait-zookeeper", "wait until ZooKeeper serves",
    lambda ctx: [_zookeeper_mode(ctx)] if ctx.host.role == "master" else [],
    _zookeeper_gate_needed, _zookeeper_gate_command)

RESTART_ORDER = (
    RestartGroup(("zookeeper",)),
    RestartGroup(("mesos-master", "marathon"), gate=ZOOKEEPER_SERVING),
    RestartGroup(("mesos-slave",)),
)
