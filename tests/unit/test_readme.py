"""The README's inventory examples must be ones the parser accepts."""

import re
from pathlib import Path

import pytest

from tasks import inventory

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
BLOCKS = re.findall(r"```ini\n(.*?)```", README, re.S)


def test_readme_has_inventory_examples():
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("block", BLOCKS)
def test_readme_inventory_example_parses(block):
    text = block if "[masters]" in block else block + "[masters]\nm1 ip=192.0.2.1 myid=1\n"
    cluster = inventory.parse(text, "README.md")
    assert cluster.masters
