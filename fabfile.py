"""The `fab` namespace: the tutorial's steps, the role playbooks, deploy-app, and the testbed.

    fab cluster                          # the whole inventory (hosts.ini), masters then slaves
    fab -H master1 install-master        # one step on one host, as the runbook does
    fab write-zoo-cfg --dry-run          # what would change, as diffs; changes nothing
    FABRIC_INVENTORY=testbed/hosts.ini fab cluster

Everything is in `tasks/` (steps, playbooks) and `testbed/`; this file only names the tasks.
"""

import functools
import math
from contextlib import contextmanager

from fabric import Connection, task
from invoke import Collection, Task
from invoke.exceptions import Exit

from tasks import apps, cli, http, maintenance, marathon, playbooks, progress, status
from tasks.steps import service
from testbed import tasks as testbed_tasks

RUN_HELP = {"dry-run": "show every change the run would make, restarts included (diffs), "
                       "and the order of each rolling restart; change nothing",
            "wait-lock": "when another run holds a host's lock, wait for it instead of failing"}
BATCH_HELP = {"batch": "agents restarted at once in a rolling restart (default: a quarter of "
                       "the agents, at least 1)"}


def _step_task(step) -> Task:
    if step is service.START_SERVICES:
        def body(c, dry_run=False, batch=0, wait_lock=False):
            cli.run_step(c, step, dry_run=dry_run, batch=int(batch), wait_lock=wait_lock)
        helps = {**RUN_HELP, **BATCH_HELP}
    else:
        def body(c, dry_run=False, wait_lock=False):
            cli.run_step(c, step, dry_run=dry_run, wait_lock=wait_lock)
        helps = RUN_HELP
    body.__name__ = step.name.replace("-", "_")
    body.__doc__ = step.help
    return Task(body, name=body.__name__, help=helps)


@task(help=RUN_HELP)
def master(c, dry_run=False, wait_lock=False):
    """Playbook: every master step in the tutorial's order (-H hosts, else all masters)."""
    cli.run_stages(c, playbooks.MASTERS, dry_run=dry_run, wait_lock=wait_lock)


@task(help={**RUN_HELP, **BATCH_HELP})
def slave(c, dry_run=False, batch=0, wait_lock=False):
    """Playbook: every slave step in the tutorial's order (-H hosts, else all slaves)."""
    cli.run_stages(c, playbooks.SLAVES, dry_run=dry_run, batch=int(batch), wait_lock=wait_lock)


@task(help={**RUN_HELP, **BATCH_HELP})
def cluster(c, dry_run=False, batch=0, wait_lock=False):
    """Playbook: the whole inventory: masters (ZooKeeper first), then slaves, in parallel."""
    cli.run_stages(c, playbooks.CLUSTER, dry_run=dry_run, batch=int(batch), wait_lock=wait_lock)


@task(help={"services": "comma-separated, from " + ",".join(playbooks.SERVICES) + " (default: all)",
            **RUN_HELP, **BATCH_HELP})
def rolling_restart(c, services=",".join(playbooks.SERVICES), dry_run=False, batch=0,
                    wait_lock=False):
    """Restart services where they run, one host at a time (agents in batches), the leader last,
    each host waiting for its gate: for restarts no configuration asked for (a JVM, a kernel)."""
    names = tuple(s.strip() for s in services.split(",") if s.strip())
    unknown = [s for s in names if s not in playbooks.SERVICES]
    if unknown or not names:
        raise Exit(f"rolling-restart: unknown service {', '.join(unknown) or '(none given)'}; "
                   f"expected some of {', '.join(playbooks.SERVICES)}", code=2)
    cli.run_stages(c, playbooks.rolling_restart(names), dry_run=dry_run, batch=int(batch),
                   wait_lock=wait_lock)


DEFAULT_WAIT = 300.0
TIMEOUT_HELP = (f"seconds to wait for Marathon to finish (default {DEFAULT_WAIT:g}); past it, "
                "say where the deployment stands")
FORCE_HELP = "override the deployments that lock the app (Marathon's ?force=true)"


def _seconds(value, option: str, default: float, code: int = 1) -> float:
    """A number of seconds from the command line (its options are strings, so that a wrong one
    is this clear line rather than Invoke's traceback): finite and above 0."""
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise Exit(progress.printable(f"--{option} must be a number of seconds above 0, got "
                                      f"{value!r}"), code=code)
    return seconds


def _once(fn):
    """`fab -H a,b task` runs the task once, for all of them: Fabric calls it once per host."""
    @functools.wraps(fn)
    def body(c, *args, **kwargs):
        if cli.first_call(c, fn.__name__):
            return fn(c, *args, **kwargs)
    return body


@contextmanager
def _marathon(c, task_name: str):
    """A Marathon client on the masters (-H: those only); any failure is one line, exit 1."""
    masters = cli.target_hosts(c, cli.load_cluster(c), ("master",))
    try:
        with marathon.Marathon.for_masters(masters, log=progress.println) as client:
            yield client
    except (marathon.AppDefinitionError, marathon.MarathonError, http.HttpError) as exc:
        raise Exit(progress.printable(f"{task_name} failed: {exc}"), code=1)


@task(help={"file": "the Marathon app definition, or a group with \"apps\"/\"groups\" (JSON)",
            "no-update": "fail if the app or group exists instead of replacing it with PUT",
            "force": FORCE_HELP, "timeout": TIMEOUT_HELP})
@_once
def deploy_app(c, file, no_update=False, force=False, timeout=None):
    """Send an app (/v2/apps) or group (/v2/groups) definition and wait until its tasks run."""
    wait = _seconds(timeout, "timeout", DEFAULT_WAIT)
    try:
        kind, definition = marathon.load_definition(file)
    except marathon.AppDefinitionError as exc:
        raise Exit(progress.printable(f"deploy-app failed, nothing was sent: {exc}"), code=1)
    with _marathon(c, "deploy-app") as m:
        progress.println(apps.deploy(m, kind, definition, update=not no_update, force=force,
                                     timeout=wait))


@task
@_once
def app_list(c):
    """List Marathon's apps: instances, running, healthy, staged, deployments under way."""
    with _marathon(c, "app-list") as m:
        progress.println(apps.list_apps(m))


@task(help={"id": "the app id, e.g. /hello2"})
@_once
def app_show(c, id):
    """Show one app: key fields, tasks and hosts, last task failure, launch-queue delay."""
    with _marathon(c, "app-show") as m:
        progress.println(apps.show_app(m, id))


@task(help={"id": "the app id", "instances": "how many tasks should run (0 stops them all)",
            "force": FORCE_HELP, "timeout": TIMEOUT_HELP})
@_once
def app_scale(c, id, instances, force=False, timeout=None):
    """Scale an app to N instances (PUT /v2/apps/{id}) and wait until N run."""
    wait = _seconds(timeout, "timeout", DEFAULT_WAIT)
    with _marathon(c, "app-scale") as m:
        try:
            count = int(instances)
        except ValueError:
            raise marathon.MarathonError(f"--instances must be a whole number, got {instances!r}")
        progress.println(apps.scale(m, id, count, force=force, timeout=wait))


@task(help={"id": "the app id", "force": FORCE_HELP, "timeout": TIMEOUT_HELP})
@_once
def app_restart(c, id, force=False, timeout=None):
    """Restart an app's tasks (POST /v2/apps/{id}/restart) and wait for the new ones."""
    wait = _seconds(timeout, "timeout", DEFAULT_WAIT)
    with _marathon(c, "app-restart") as m:
        progress.println(apps.restart(m, id, force=force, timeout=wait))


@task(help={"id": "the app id", "timeout": TIMEOUT_HELP})
@_once
def app_destroy(c, id, timeout=None):
    """Remove an app and kill its tasks (DELETE /v2/apps/{id}); wait until it is gone."""
    wait = _seconds(timeout, "timeout", DEFAULT_WAIT)
    with _marathon(c, "app-destroy") as m:
        progress.println(apps.destroy(m, id, timeout=wait))


@task
@_once
def deployments(c):
    """List Marathon's running deployments: apps, step i/n, current actions, age."""
    with _marathon(c, "deployments") as m:
        progress.println(apps.list_deployments(m))


@task(help={"id": "the deployment id (fab deployments lists them)",
            "force": "stop it without rollback, leaving its apps part-way",
            "timeout": TIMEOUT_HELP})
@_once
def deployment_cancel(c, id, force=False, timeout=None):
    """Cancel a deployment: Marathon rolls it back (waited for); --force stops it as it is."""
    wait = _seconds(timeout, "timeout", DEFAULT_WAIT)
    with _marathon(c, "deployment-cancel") as m:
        progress.println(apps.cancel(m, id, force=force, timeout=wait))


@task(help={"json": "print the facts and findings as JSON (same exit status)",
            "deployment-age": "seconds after which a running deployment counts as stuck "
                              f"(default {status.DEFAULT_DEPLOYMENT_AGE:g})",
            "timeout": "seconds each call may take; the whole check ends within about "
                       f"2 x timeout + 1 s (default {status.DEFAULT_TIMEOUT:g})"})
@_once
def cluster_status(c, json=False, deployment_age=None, timeout=None):
    """Health check: exit 0 healthy, 1 degraded, 2 down; one line per problem.

    Asks every master in parallel (ZooKeeper srvr, Mesos /metrics/snapshot, Marathon
    /v2/leader), then the leaders (ZooKeeper mntr, Mesos /master/state, Marathon apps,
    deployments and launch queue). Read-only.

    Down (2): no ZooKeeper quorum; no Mesos master elected (or several), or the elected one's
    replicated log not recovered; no Marathon leader. Degraded (1): a ZooKeeper member down or
    not serving, or fewer synced followers than the ensemble size - 1; a Mesos master
    unreachable or its log not recovered; an inventory agent not active, or an agent the
    inventory does not know; Marathon unreachable on a master; a deployment older than
    --deployment-age; an app with fewer running (or, with health checks, healthy) tasks than
    instances; an app in launch back-off. Anything unreachable is named with the reason.
    """
    # A wrong option cannot be told from a sick cluster by the exit code alone: 2, loudest.
    timeout = _seconds(timeout, "timeout", status.DEFAULT_TIMEOUT, code=2)
    deployment_age = _seconds(deployment_age, "deployment-age", status.DEFAULT_DEPLOYMENT_AGE,
                              code=2)
    report = status.check(cli.load_cluster(c), timeout=timeout, deployment_age=deployment_age)
    progress.println(status.to_json(report) if json else status.render(report))
    if report.exit_code:
        raise Exit(code=report.exit_code)


@task(help={**RUN_HELP, **BATCH_HELP})
def upgrade(c, dry_run=False, batch=0, wait_lock=False):
    """Install the versions that master_packages / slave_packages pin (mesos=..., marathon=...),
    each right before its service restarts: masters one at a time, the leader last, then
    agents in batches, behind the gates of every restart."""
    cli.run_stages(c, playbooks.UPGRADE, dry_run=dry_run, batch=int(batch), wait_lock=wait_lock)


def _agents(c, task_name: str) -> tuple:
    """The inventory and the slaves named with -H (these tasks act on agents one by one)."""
    cluster_ = cli.load_cluster(c)
    if not isinstance(c, Connection):
        raise Exit(f"{task_name}: name the agent: fab -H slave2 {task_name}", code=2)
    return cluster_, cli.target_hosts(c, cluster_, ("slave",))


@task(help={"window": "hours of the maintenance window announced to frameworks (default 1)",
            "timeout": "seconds to wait for Marathon to relaunch the agent's tasks elsewhere "
                       "(default 600)"})
def drain_agent(c, window=1, timeout=600):
    """Take an agent out of service (-H): maintenance window, machine down, its tasks relaunched
    elsewhere (each named); it stays down until agent-up."""
    if not cli.first_call(c, "drain-agent"):
        return
    cluster_, hosts = _agents(c, "drain-agent")
    for host in hosts:
        try:
            for line in maintenance.drain(cluster_, host, hours=float(window),
                                          timeout=float(timeout)):
                progress.println(line)
        except (maintenance.MaintenanceError, marathon.MarathonError, http.HttpError,
                status.BadAnswer) as exc:
            raise Exit(f"drain-agent failed on {host.name}: {exc}", code=1)


@task(help={"timeout": "seconds to wait for the agent to be active again (default 120)"})
def agent_up(c, timeout=120):
    """Bring a drained agent back (-H): machine up, out of the schedule, mesos-slave started,
    waits until the agent is active again."""
    if not cli.first_call(c, "agent-up"):
        return
    cluster_, hosts = _agents(c, "agent-up")
    try:
        for host in hosts:
            for line in maintenance.up(cluster_, host):
                progress.println(line)
        cli.run_step(c, service.START_SERVICES)
        for host in hosts:
            progress.println(maintenance.wait_active(cluster_, host, timeout=float(timeout)))
    except (maintenance.MaintenanceError, http.HttpError, status.BadAnswer) as exc:
        raise Exit(f"agent-up failed: {exc}", code=1)


ns = Collection(master, slave, cluster, rolling_restart, upgrade, drain_agent, agent_up,
                deploy_app, cluster_status)
for _app_task in (app_list, app_show, app_scale, app_restart, app_destroy, deployments,
                  deployment_cancel):
    ns.add_task(_app_task)
for _step in playbooks.STEPS:
    ns.add_task(_step_task(_step))
ns.add_collection(testbed_tasks.ns)
# Declared so FABRIC_INVENTORY, fabric.yaml and -f can set it (Invoke only reads known keys).
ns.configure({"inventory": ""})
