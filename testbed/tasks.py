"""`fab testbed.up|down|status`: the Invoke collection `testbed` over testbed.hosts.

The fabfile adds it with `ns.add_collection(testbed.tasks.ns)`. The tasks run locally as root;
they do not use the Connection Fabric passes in. They act on the instance $MESOS_TESTBED names
(unset: the default one), so several testbeds can run on one machine at once.
"""
from __future__ import annotations

import time

from invoke import Collection, Exit, task

from testbed import config, hosts


@task(help={
    "slaves": f"number of slave hosts (default {config.DEFAULT_SLAVES}, at most "
              f"{config.MAX_SLAVES})",
    "subnet": "the hosts' /24 (default: the first free of "
              + ", ".join(config.CANDIDATE_SUBNETS[:2]) + ", 10.213.x.0/24)",
    "marathon-version": f"version of the stand-in marathon package (default "
                        f"{config.DEFAULT_MARATHON}; 1.5+ reads /etc/default/marathon)",
    "no-repo": "do not build or serve the stand-in package repo",
})
def up(c, slaves=config.DEFAULT_SLAVES, subnet=None,
       marathon_version=config.DEFAULT_MARATHON, no_repo=False):
    """Build and boot master1-3 and slave1-N; write the inventory (testbed/hosts.ini, or
    testbed/hosts-INST.ini for the instance $MESOS_TESTBED=INST)."""
    t0 = time.time()
    try:
        hosts.up(int(slaves), subnet, marathon_version, repo=not no_repo)
    except (RuntimeError, ValueError, TimeoutError, PermissionError) as e:
        # `up` has already torn down what it built; a one-line reason beats a traceback.
        raise Exit(f"testbed.up failed: {e}", code=1)
    print(f"FABRIC_INVENTORY={config.INVENTORY.relative_to(config.INVENTORY.parents[1])} "
          f"fab cluster   # ({time.time() - t0:.1f} s)")


@task
def down(c):
    """Remove every host, link, mount, firewall table and setting `up` made."""
    hosts.down()


@task
def status(c):
    """Print each host: up/down, its IP and whether sshd answers."""
    rows = hosts.status()
    if not rows:
        print("testbed is down")
        return
    for r in rows:
        print(f"{r['name']:<10} {r['ip']:<16} {'up' if r['up'] else 'down':<5} "
              f"ssh {'ok' if r['ssh'] else 'no'}")


ns = Collection("testbed")
ns.add_task(up)
ns.add_task(down)
ns.add_task(status)
