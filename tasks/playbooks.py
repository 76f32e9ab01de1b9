"""The order of the steps: the tutorial's, per role, and the whole cluster's.

`runbooks/bootstrap-cluster.md` lists the same steps in the same order; a unit test holds the
two together. A phase is (roles, steps): the hosts of those roles run the steps, in parallel.
"""

from __future__ import annotations

from tasks.steps import config, install, service

MASTER = (
    install.ADD_REPO,
    install.INSTALL_MASTER,
    config.WRITE_ZK,
    config.WRITE_MYID,
    config.WRITE_ZOO_CFG,
    config.SET_QUORUM,
    config.SET_IP_HOSTNAME,
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

# The whole cluster: masters in parallel with the ZooKeeper ensemble formed before mesos-master
# and Marathon start (they need it to elect leaders), then the slaves in parallel. A master that
# failed stops the run before any slave is touched (see `cli.run_phases`).
CLUSTER = (
    (("master",), MASTER[:-1] + (service.start_services_step(("zookeeper",)),
                                  service.WAIT_ZOOKEEPER,
                                  service.start_services_step(("mesos-master", "marathon")))),
    (("slave",), SLAVE),
)
