"""The tutorial's steps, split as a good Ansible role is: install, config, service.

`install`: add-repo, install-master, install-slave. `config`: write-zk, write-myid,
write-zoo-cfg, set-quorum, set-ip-hostname, configure-marathon (they only render files and leave
restart marks). `service`: disable-unused-services, start-services (they only set service state).
`ALL` lists them in the tutorial's order; `tasks.playbooks` chains them.
"""

from tasks.steps import config, install, service

ALL = (
    install.ADD_REPO,
    install.INSTALL_MASTER,
    install.INSTALL_SLAVE,
    config.WRITE_ZK,
    config.WRITE_MYID,
    config.WRITE_ZOO_CFG,
    config.SET_QUORUM,
    config.SET_IP_HOSTNAME,
    config.CONFIGURE_MARATHON,
    service.DISABLE_UNUSED_SERVICES,
    service.START_SERVICES,
)
