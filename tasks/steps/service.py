"""Service phase: which services run where, and restarts only when owed.

Masters run zookeeper, mesos-master and marathon and never mesos-slave; slaves run mesos-slave
and never zookeeper nor mesos-master (the packages enable all of them at boot, hence the
tutorial's `.override` files). A service is restarted only when a config step marked it (its own
configuration changed, in this run or an earlier one that did not get to restart it) or when it
is not running, so a second run restarts nothing.
"""

from __future__ import annotations

from tasks import facts, shell
from tasks.runner import Change, HostContext, Step, StepError

RUNS = {"master": ("zookeeper", "mesos-master", "marathon"), "slave": ("mesos-slave",)}
NEVER_RUNS = {"master": ("mesos-slave",), "slave": ("zookeeper", "mesos-master")}


def _service_probes(ctx: HostContext, services: tuple[str, ...]) -> dict[str, str]:
    probes = {}
    for i, svc in enumerate(services):
        probes[f"installed{i}"] = shell.service_installed(ctx.init, svc)
        probes[f"enabled{i}"] = shell.service_enabled(ctx.init, svc)
        probes[f"running{i}"] = shell.service_running(ctx.init, svc)
        probes[f"marker{i}"] = shell.exists(shell.restart_marker(svc))
    return probes


def _disable_probes(ctx: HostContext) -> dict[str, str]:
    return _service_probes(ctx, NEVER_RUNS[ctx.host.role])


def _disable_plan(ctx: HostContext, found: dict[str, facts.Probe]) -> list[Change]:
    changes = []
    for i, svc in enumerate(NEVER_RUNS[ctx.host.role]):
        if not found[f"installed{i}"].ok:
            continue  # e.g. a slave installed without Recommends has no zookeeper at all
        if found[f"enabled{i}"].ok or found[f"running{i}"].ok:
            changes.append(Change(f"stop and disable {svc}", shell.service_disable_now(ctx.init, svc)))
    return changes


DISABLE_UNUSED_SERVICES = Step("disable-unused-services", ("master", "slave"),
                               _disable_probes, _disable_plan)

# Where the agent checkpoints its identity; see `start_services_step`.
AGENT_WORK_DIR_FILE = "/etc/mesos-slave/work_dir"
# A restart mark of its own, set by steps that change what the agent checkpoints as its
# identity (ip, hostname): only then is the checkpoint dropped. Other changes (a new
# /etc/mesos/zk) restart the agent but keep its id and its running tasks.
AGENT_INFO_MARK = "mesos-slave.agent-info"


def start_services_step(only: tuple[str, ...] = ()) -> Step:
    """`start-services`, or a part of it (the cluster playbook starts ZooKeeper first)."""

    def services(ctx: HostContext) -> tuple[str, ...]:
        return tuple(s for s in RUNS[ctx.host.role] if not only or s in only)

    def probes(ctx: HostContext) -> dict[str, str]:
        p = _service_probes(ctx, services(ctx))
        if "mesos-slave" in services(ctx):
            p["work_dir"] = shell.read_file(AGENT_WORK_DIR_FILE)
            p["agent_info"] = shell.exists(shell.restart_marker(AGENT_INFO_MARK))
        return p

    def plan(ctx: HostContext, found: dict[str, facts.Probe]) -> list[Change]:
        changes, started = [], []
        for i, svc in enumerate(services(ctx)):
            if not found[f"installed{i}"].ok:
                raise StepError(f"{svc} is not installed on {ctx.host.name}: "
                                f"run install-{ctx.host.role} first")
            if not found[f"enabled{i}"].ok:
                changes.append(Change(f"enable {svc} at boot", shell.service_enable(ctx.init, svc)))
            marked, running = found[f"marker{i}"].ok, found[f"running{i}"].ok
            if marked or not running:
                if marked:
                    changes += _drop_agent_checkpoint(svc, found)
                summary = f"restart {svc} (configuration changed)" if marked else f"start {svc}"
                changes.append(Change(summary, shell.service_restart(ctx.init, svc)))
                started.append(svc)
            if marked:
                changes.append(Change(f"clear the restart mark of {svc}", shell.clear_restart(svc)))
        if started:
            changes.append(Change(f"check that {', '.join(started)} stayed up",
                                  shell.verify_running(ctx.init, tuple(started))))
        return changes

    def _drop_agent_checkpoint(svc: str, found: dict[str, facts.Probe]) -> list[Change]:
        """An agent whose ip/hostname changed refuses to start ("Incompatible agent info")
        until its checkpointed identity is dropped (ansible-mesos#65)."""
        if svc != "mesos-slave" or not found["agent_info"].ok:
            return []
        work_dir = facts.file_fact(found["work_dir"])
        latest = (work_dir.content.strip() or "/var/lib/mesos").rstrip("/") + "/meta/slaves/latest"
        return [Change(f"drop the agent checkpoint {latest}", shell.remove_file(latest)),
                Change("clear the agent identity mark", shell.clear_restart(AGENT_INFO_MARK))]

    name = "start-services" if not only else "start-" + "+".join(only)
    return Step(name, ("master", "slave"), probes, plan)


START_SERVICES = start_services_step()


def _wait_probes(ctx: HostContext) -> dict[str, str]:
    s = ctx.host.settings
    modes = ("leader", "follower") if len(ctx.cluster.masters) > 1 else ("standalone",)
    return {"serving": shell.wait_zookeeper_serving(s.zk_port, modes, seconds=90)}


def _wait_plan(ctx: HostContext, found: dict[str, facts.Probe]) -> list[Change]:
    if not found["serving"].ok:
        raise StepError(f"ZooKeeper on {ctx.host.name} is not serving: check "
                        f"`echo srvr | nc {ctx.host.ip} {ctx.host.settings.zk_port}` and its log")
    return []


# A gate of the cluster playbook: mesos-master needs the ensemble to elect a leader.
WAIT_ZOOKEEPER = Step("wait-zookeeper", ("master",), _wait_probes, _wait_plan, check=True)
