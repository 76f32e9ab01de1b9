"""Service phase: which services run where, and restarts only when owed.

Masters run zookeeper, mesos-master and marathon and never mesos-slave; slaves run mesos-slave
and never zookeeper nor mesos-master (the packages enable all of them at boot, hence the
tutorial's `.override` files). A service is restarted only when a config step marked it (its own
configuration changed, in this run or an earlier one that did not get to restart it) or when it
is not running, so a second run restarts nothing.

The restarts themselves are planned as `Restart` items and ordered across hosts by
`playbooks.RESTART_ORDER`: ZooKeeper first, then mesos-master, Marathon, and the agents; where
a service serves, one host at a time behind its gate (`tasks.gates`), the leader last.
"""

from __future__ import annotations

from tasks import facts, init, shell
from tasks.facts import Facts, Service
from tasks.step import Change, HostContext, Planned, Restart, Step, StepError

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


ZOO_CFG = "/etc/zookeeper/conf/zoo.cfg"
# A copy of the zoo.cfg that ZooKeeper was last (re)started with, made by each restart: what
# it runs with once the file has changed again (`config.zoo_cfg_bridge` needs to know).
STARTED_ZOO_CFG = "/var/lib/mesos-fab/started/zoo.cfg"


# The package of each service's binaries. A version of it pinned in the inventory
# (master_packages / slave_packages, `mesos=1.4.2-2.0.1`) that the host does not have is
# installed by start-services right before it restarts the service, so that an upgrade goes
# through the same rolling order and gates as every restart (install-* leaves it alone).
PACKAGE_OF = {"zookeeper": "zookeeper", "mesos-master": "mesos", "mesos-slave": "mesos",
              "marathon": "marathon"}


def pinned(ctx: HostContext) -> dict[str, list[str]]:
    """{service of this role: its package's `name=version` pins}."""
    packages = ctx.host.settings.master_packages if ctx.host.role == "master" \
        else ctx.host.settings.slave_packages
    found: dict[str, list[str]] = {}
    for wanted in packages:
        name, _, version = wanted.partition("=")
        for svc in RUNS[ctx.host.role]:
            if version and PACKAGE_OF[svc] == name:
                found.setdefault(svc, []).append(wanted)
    return found


def _start_needs(ctx: HostContext) -> list[str]:
    needs = [facts.INIT, facts.RESTART_MARKS] + [facts.service(s) for s in RUNS[ctx.host.role]]
    needs += list(dict.fromkeys(facts.package(w.partition("=")[0])
                                for pins in pinned(ctx).values() for w in pins))
    if ctx.host.role == "slave":
        needs.append(facts.file(AGENT_WORK_DIR_FILE))
    else:
        needs.append(facts.file(STARTED_ZOO_CFG))
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
        upgrade = [w for w in pinned(ctx).get(svc, [])
                   if found[facts.package(w.partition("=")[0])] != w.partition("=")[2]]
        if not (marked or upgrade or not state.running):
            continue
        changes = []
        new_identity = marked and svc == "mesos-slave" and AGENT_INFO_MARK in marks
        if new_identity:
            marks.discard(AGENT_INFO_MARK)
            changes += _drop_agent_checkpoint(found, frozenset(marks))
        if upgrade:
            lock_wait = ctx.host.settings.dpkg_lock_timeout
            # The lists first: the pinned version may have been published since the last update.
            changes.append(Change("apt-get update", shell.apt_update(lock_wait), kind="apt"))
            changes.append(Change(
                f"install {' '.join(upgrade)}", shell.apt_install(upgrade, lock_wait),
                kind="apt", sets={facts.package(w.partition("=")[0]): w.partition("=")[2]
                                  for w in upgrade}))
        summary = (f"restart {svc} (marked for a restart)" if marked else
                   f"restart {svc} (upgraded)" if upgrade and state.running else f"start {svc}")
        changes.append(Change(summary, restart_command(strategy, svc),
                              sets={facts.service(svc): Service(True, True)}, kind="service"))
        if marked:
            marks.discard(svc)
            changes.append(Change(f"clear the restart mark of {svc}", shell.clear_restart(svc),
                                  sets={facts.RESTART_MARKS: frozenset(marks)}))
        planned.append(Restart(svc, tuple(changes), keeps_tasks=not new_identity))
    return planned


def restart_command(strategy, svc: str) -> str:
    """(Re)start `svc`; ZooKeeper keeps a copy of the zoo.cfg it starts with."""
    restart = strategy.restart(svc)
    return f"{shell.copy_file(ZOO_CFG, STARTED_ZOO_CFG)} && {restart}" if svc == "zookeeper" \
        else restart


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
    _start_needs, _start_plan)


def mark_for_restart(services: tuple[str, ...]) -> Step:
    """`fab rolling-restart`: mark the named services of the host's role for a restart, for
    start-services to roll them; the marks left by a roll that stopped keep the rest owed."""
    def needs(ctx: HostContext) -> list[str]:
        return [facts.RESTART_MARKS]

    def plan(ctx: HostContext, found: Facts) -> list[Change]:
        marks = set(found[facts.RESTART_MARKS])
        changes = []
        for svc in RUNS[ctx.host.role]:
            if svc in services and svc not in marks:
                marks.add(svc)
                changes.append(Change(f"mark {svc} for a restart", shell.mark_restart(svc),
                                      sets={facts.RESTART_MARKS: frozenset(marks)}))
        return changes

    roles = tuple(role for role, runs in RUNS.items() if set(runs) & set(services))
    return Step("rolling-restart", roles, "Mark services for a restart.", needs, plan)
