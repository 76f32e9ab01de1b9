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
