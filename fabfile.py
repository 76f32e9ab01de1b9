"""The `fab` namespace: the tutorial's steps, the role playbooks, deploy-app, and the testbed.

    fab cluster                          # the whole inventory (hosts.ini), masters then slaves
    fab -H master1 install-master        # one step on one host, as the runbook does
    fab write-zoo-cfg --dry-run          # what would change, as diffs; changes nothing
    FABRIC_INVENTORY=testbed/hosts.ini fab cluster

Everything is in `tasks/` (steps, playbooks) and `testbed/`; this file only names the tasks.
"""

from fabric import task
from invoke import Collection, Task
from invoke.exceptions import Exit

from tasks import cli, marathon, playbooks, status
from testbed import tasks as testbed_tasks

DRY_RUN_HELP = {"dry-run": "show every change the run would make, restarts included (diffs); change nothing"}

def _step_task(step) -> Task:
    def body(c, dry_run=False):
        cli.run_step(c, step, dry_run=dry_run)
    body.__name__ = step.name.replace("-", "_")
    body.__doc__ = step.help
    return Task(body, name=body.__name__, help=DRY_RUN_HELP)


@task(help=DRY_RUN_HELP)
def master(c, dry_run=False):
    """Playbook: every master step in the tutorial's order (-H hosts, else all masters)."""
    cli.run_stages(c, playbooks.MASTERS, dry_run=dry_run)


@task(help=DRY_RUN_HELP)
def slave(c, dry_run=False):
    """Playbook: every slave step in the tutorial's order (-H hosts, else all slaves)."""
    cli.run_stages(c, playbooks.SLAVES, dry_run=dry_run)


@task(help=DRY_RUN_HELP)
def cluster(c, dry_run=False):
    """Playbook: the whole inventory: masters (ZooKeeper first), then slaves, in parallel."""
    cli.run_stages(c, playbooks.CLUSTER, dry_run=dry_run)


@task(help={"file": "the Marathon app definition (JSON)",
            "no-update": "fail if the app exists instead of updating it with PUT",
            "force": "update even if a deployment of the app is running",
            "timeout": "seconds to wait for the deployment to finish"})
def deploy_app(c, file, no_update=False, force=False, timeout=300):
    """Send a Marathon app definition to /v2/apps and wait until its tasks run."""
    cluster_ = cli.load_cluster(c)
    masters = cli.target_hosts(c, cluster_, ("master",))
    try:
        app = marathon.load_app_file(file)
        result = marathon.deploy(
            app, [f"http://{m.ip}:{m.settings.marathon_port}" for m in masters],
            update=not no_update, force=force, timeout=float(timeout))
    except (marathon.AppDefinitionError, marathon.MarathonError) as exc:
        raise Exit(f"deploy-app failed: {exc}", code=1)
    print(marathon.format_result(result))


@task
def cluster_status(c):
    """Show ZooKeeper modes, Mesos and Marathon leaders, active agents and apps' tasks."""
    print(status.format_state(status.collect(cli.load_cluster(c))))


ns = Collection(master, slave, cluster, deploy_app, cluster_status)
for _step in playbooks.STEPS:
    ns.add_task(_step_task(_step))
ns.add_collection(testbed_tasks.ns)
# Declared so FABRIC_INVENTORY, fabric.yaml and -f can set it (Invoke only reads known keys).
ns.configure({"inventory": ""})
