"""`fab testbed.up|down|status|add-host|remove-host`: the Invoke collection `testbed` over
testbed.hosts.

The fabfile adds it with `ns.add_collection(testbed.tasks.ns)`. The tasks run locally as root;
they do not use the Connection Fabric passes in. They act on the instance $MESOS_TESTBED names
(unset: the default one), so several testbeds can run on one machine at once.

A running testbed grows and shrinks as a real cluster does:

    fab testbed.add-host --name slave4 --role slave      # next free slave address (.51-.250)
    fab testbed.add-host --name master4 --role master    # next free master address and myid
    fab testbed.remove-host --name master2               # gone: container, overlay, link

`add-host` prints the host's inventory line and `remove-host` the line to delete; neither
edits the inventory (testbed/hosts*.ini). Only `up` writes it, when it builds a testbed, and
`down` deletes it: from then on it is the operator's file, and the operator (or an
integration test acting as one) adds and removes lines, as with real servers.
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


@task(help={"name": "host name (a-z, 0-9, '-'), e.g. slave4",
            "role": "master or slave",
            "ip": "its address (default: the next free one of its role's range)",
            "myid": "a master's ZooKeeper id for the inventory line (default: the next free)"})
def add_host(c, name, role, ip=None, myid=None):
    """Add a fresh host to the running testbed and boot it; print its inventory line."""
    try:
        host = hosts.add_host(name, role, ip, int(myid) if myid else None)
    except (RuntimeError, ValueError, KeyError, TimeoutError, PermissionError) as e:
        raise Exit(f"testbed.add-host failed: {e}", code=1)
    section = "masters" if role == "master" else "slaves"
    print(f"add under [{section}] in {config.INVENTORY.name}:\n{config.inventory_line(host)}")


@task(help={"name": "the host to remove, e.g. master2"})
def remove_host(c, name):
    """Remove a host from the running testbed for good (container, overlay, link)."""
    try:
        host = next((h for h in (hosts.load_state() or {}).get("hosts", [])
                     if h["name"] == name), None)
        hosts.remove_host(name)
    except (RuntimeError, KeyError, PermissionError) as e:
        raise Exit(f"testbed.remove-host failed: {e}", code=1)
    line = config.inventory_line(config.Host(name, host["ip"], host["role"], host["myid"]))
    print(f"delete from {config.INVENTORY.name} (if it is there):\n{line}")


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
ns.add_task(add_host)
ns.add_task(remove_host)
