"""The order of the steps: the tutorial's, per role, and the whole cluster's.

`runbooks/bootstrap-cluster.md` lists the same steps in the same order; a unit test holds the
two together. A stage is (roles, steps): the hosts of those roles run the steps, in parallel.
Restarts are ordered across hosts by `RESTART_ORDER` whatever the playbook: ZooKeeper first,
then mesos-master, Marathon and the agents, each rolled where it serves (`tasks.plan`).
"""

from __future__ import annotations

from tasks import gates
from tasks.runner import Stage
from tasks.step import RestartGroup
from tasks.steps import config, install, service

MASTER = (
    install.ADD_REPO,
    install.INSTALL_MASTER,
    config.WRITE_ZK,
    config.WRITE_MYID,
    config.WRITE_ZOO_CFG,
    config.SET_QUORUM,
    config.SET_IP_HOSTNAME,
    config.SET_FRAMEWORK_AUTH,
    config.CONFIGURE_MARATHON,
    service.DISABLE_UNUSED_SERVICES,
    service.START_SERVICES,
)

SLAVE = (
    install.ADD_REPO,
    install.INSTALL_SLAVE,
    config.WRITE_ZK,
    service.DISABLE_UNUSED_SERVICES,
    config.SET_IP_HOSTNAME,
    service.START_SERVICES,
)

# Every step once, in the order it first appears (the fab tasks and the tests use it).
STEPS = tuple(dict.fromkeys(MASTER + SLAVE))

# ZooKeeper first: mesos-master and Marathon need the ensemble to elect their leaders. Each
# service is rolled on its own, so that its leader goes last (the Mesos and the Marathon
# leader need not be on the same master); the agents follow, in batches. A follower whose new
# zoo.cfg gives the leader other ports than it runs with is bridged (`config.zoo_cfg_bridge`);
# Marathon must run on every master before each ZooKeeper restart (`gates.MarathonEverywhere`).
RESTART_ORDER = (
    RestartGroup("zookeeper", gates.ZOOKEEPER, start_gate=gates.ZOOKEEPER_STARTS,
                 bridge=config.zoo_cfg_bridge, companion=gates.MARATHON_EVERYWHERE),
    RestartGroup("mesos-master", gates.MESOS_MASTER),
    RestartGroup("marathon", gates.MARATHON),
    RestartGroup("mesos-slave", gates.AGENTS, batched=True),
)

MASTERS = (Stage(("master",), MASTER),)
SLAVES = (Stage(("slave",), SLAVE),)
# The whole cluster: the masters, then the slaves; a master that failed stops the run before
# any slave is changed.
CLUSTER = MASTERS + SLAVES


def step_stages(step) -> tuple[Stage, ...]:
    """One step on every host it applies to."""
    return (Stage(step.roles, (step,)),)


SERVICES = tuple(g.service for g in RESTART_ORDER)

# `fab upgrade`: the package versions pinned in the inventory, installed where each service
# restarts (start-services): masters one at a time, the leader last, then agents in batches.
UPGRADE = (Stage(("master",), (service.START_SERVICES,)),
           Stage(("slave",), (service.START_SERVICES,)))


def rolling_restart(services: tuple[str, ...]) -> tuple[Stage, ...]:
    """Restart the named services where they run, with the order and gates of every restart:
    the masters' services first, then the agents."""
    mark = service.mark_for_restart(services)
    return tuple(Stage((role,), (mark, service.START_SERVICES))
                 for role in ("master", "slave") if role in mark.roles)
