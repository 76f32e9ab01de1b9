"""The tutorial's steps, split as a good Ansible role is: install, config, service.

`install`: add-repo, install-master, install-slave. `config`: write-zk, write-myid,
write-zoo-cfg, set-quorum, set-ip-hostname, configure-marathon (they only render files and leave
restart marks). `service`: disable-unused-services, start-services (they only set service state).
`tasks.playbooks` chains them; `playbooks.STEPS` lists each once.
"""
