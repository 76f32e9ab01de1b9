"""The runbook and the playbooks must list the same steps in the same order."""

import re
from pathlib import Path

from tasks import playbooks

RUNBOOK = Path(__file__).resolve().parents[2] / "runbooks" / "bootstrap-cluster.md"


def runbook_steps(section: str) -> list[str]:
    text = RUNBOOK.read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\s+fab -H \S+ ([a-z-]+)$", body, flags=re.M)


def test_master_section_follows_the_master_playbook():
    assert runbook_steps("Masters") == [s.name for s in playbooks.MASTER]


def test_slave_section_follows_the_slave_playbook():
    assert runbook_steps("Slaves") == [s.name for s in playbooks.SLAVE]


def test_cluster_playbook_runs_the_same_steps_as_the_role_playbooks():
    (master_roles, master_steps), (slave_roles, slave_steps) = playbooks.CLUSTER
    assert master_roles == ("master",) and slave_roles == ("slave",)
    # The cluster splits start-services in two around the ZooKeeper gate; all else is the same.
    assert [s.name for s in master_steps[:-3]] == [s.name for s in playbooks.MASTER[:-1]]
    assert [s.name for s in master_steps[-3:]] == [
        "start-zookeeper", "wait-zookeeper", "start-mesos-master+marathon"]
    assert slave_steps == playbooks.SLAVE
