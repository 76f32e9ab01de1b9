"""tasks.facts: the parsers of probe output, on recorded outputs."""

from __future__ import annotations

import base64

import pytest

from tasks import facts
from tasks.facts import FileFact, Package, Probe


def line(name: str, rc: object, out: str) -> str:
    return f"@@probe {name} {rc} {base64.b64encode(out.encode()).decode()}"


def test_parse_gather_exact():
    out = "\n".join([line("a", 0, "x\n"), line("b", 3, ""), line("c", "oops", "y"), "noise"]) + "\n"
    assert facts.parse_gather(out, ["a", "b"]) == {
        "a": Probe(0, "x\n"), "b": Probe(3, ""), "c": Probe(255, "y")}


def test_parse_gather_empty_payload_line():
    # `base64` of nothing prints nothing: the line ends with a space, split gives '' as payload
    assert facts.parse_gather("@@probe a 1 \n", ["a"]) == {"a": Probe(1, "")}


def test_parse_gather_missing():
    with pytest.raises(ValueError, match="a, b"):
        facts.parse_gather("", ["a", "b"])


@pytest.mark.parametrize("probe, expected", [
    (Probe(0, "644 root root\nzk://x/mesos\n"), FileFact(True, "zk://x/mesos\n", "644", "root", "root")),
    (Probe(0, "600 ops staff\n"), FileFact(True, "", "600", "ops", "staff")),
    (Probe(0, "644 root root\n\n\n"), FileFact(True, "\n\n", "644", "root", "root")),
    (Probe(3, ""), FileFact(False)),
])
def test_file_fact(probe, expected):
    assert facts.file_fact(probe) == expected


def test_file_fact_unreadable():
    with pytest.raises(ValueError, match="exit 1"):
        facts.file_fact(Probe(1, ""))


def test_packages():
    out = ("mesos install ok installed 1.4.1-2.0.1\n"
           "marathon deinstall ok config-files 1.4.8-1.0.660.ubuntu1404\n"
           "zookeeper install ok not-installed \n"
           "garbage\n")
    assert facts.packages(Probe(0, out)) == {
        "mesos": Package("mesos", True, "1.4.1-2.0.1"),
        "marathon": Package("marathon", False, ""),
        "zookeeper": Package("zookeeper", False, ""),
    }


@pytest.mark.parametrize("version, expected", [
    ("1:1.4.8-1.0.660.debian90", (1, 4, 8)),
    ("1.6.322-2.0.145.debian90", (1, 6, 322)),
    ("0.15.3-1.0.455.ubuntu1404", (0, 15, 3)),
    ("3.4.5+dfsg-1", (3, 4, 5)),
    ("1.10rc1-1", (1, 10)),
    ("", ()),
])
def test_version_tuple(version, expected):
    assert facts.version_tuple(version) == expected


def test_fingerprints_and_key_present():
    fprs = facts.fingerprints(Probe(0, " 81026d0004c44cf7ef55adf8df7d54cbe56151bf \n\n"))
    assert fprs == {"81026D0004C44CF7EF55ADF8DF7D54CBE56151BF"}
    assert facts.key_present(fprs, "e56151bf")
    assert facts.key_present(fprs, "DF7D54CBE56151BF")
    assert facts.key_present(fprs, "81026D0004C44CF7EF55ADF8DF7D54CBE56151BF")
    assert not facts.key_present(fprs, "0000E561")
    assert not facts.key_present(set(), "E56151BF")
