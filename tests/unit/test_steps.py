"""Every step, as data: named facts in, the exact commands out (pyinfra's model).

The cases are JSON files in tests/unit/cases/<step>/ (see the README there). Each is planned
and scheduled as `fab -H HOST STEP` would, so a case shows every command that run sends,
restarts and checks included. Expected commands are literal in the data, so a change in a
builder or a plan shows up as a diff of the case, to be read and accepted case by case.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
from pathlib import Path

import pytest

from tasks import facts, inventory, plan, playbooks
from tasks.facts import Snapshot, UnknownFact
from tasks.step import HostContext, Restart
from tasks.steps.config import version_tuple
from tests.unit import gate_views

CASES = Path(__file__).parent / "cases"
STEPS = {s.name: s for s in playbooks.STEPS}


def case_files() -> list[Path]:
    return sorted(p for p in CASES.glob("*/*.json"))


def fact_value(name: str, data):
    """A fact's value from its readable JSON form in a case."""
    kind = facts.kind_of(name)
    if data is None:
        return None
    if kind == "file":
        return facts.File(**data)
    if kind == "service":
        return facts.Service(**data)
    if kind in ("keyring", facts.APT_KEY, facts.RESTART_MARKS):
        return frozenset(data)
    if kind == facts.LSB_RELEASE:
        return tuple(data)
    return data


def load(path: Path):
    case = json.loads(path.read_text())
    cluster = inventory.load(CASES / "inventories" / case["inventory"])
    ctx = HostContext(cluster.find(case["host"]), cluster)
    snapshot = Snapshot({n: fact_value(n, v) for n, v in case["facts"].items()})
    return case, STEPS[path.parent.name], ctx, snapshot


def scheduled(ctx, step, snapshot, serving=()):
    """What `fab -H host step` plans for the host: its entries, each with its changes. The
    gates see the services in `serving` serve on this host (and every other), the rest not."""
    host_plan = plan.plan_host(ctx, [step], snapshot)
    hosts = [(ctx, host_plan, snapshot)]
    seen = {}
    for group in plan.restarted(hosts, playbooks.RESTART_ORDER):
        role = ctx.cluster.slaves if group.service == "mesos-slave" else ctx.cluster.masters
        names = [h.name for h in role] if group.service in serving else []
        seen[group.service] = gate_views.view(ctx.cluster, group.service, names)
    return host_plan, plan.schedule(hosts, playbooks.RESTART_ORDER, seen)


def as_data(sched, step_name: str) -> list[dict]:
    """The changes in the order they are applied (a gate's wait is named by its gate)."""
    ordered = []
    for phase in sched.phases:
        if isinstance(phase, plan.Together):
            ordered += phase.work.get(0, [])
            ordered += [(entry, entry.changes[0]) for entry in phase.waiting.values()]
        else:
            for batch in phase.batches:
                ordered += batch.work[0] + [(batch.gates[0], batch.gates[0].changes[0])]
    out = []
    for entry, change in ordered:
        item = {"summary": change.summary, "command": change.command}
        if entry.name != step_name:
            item = {"step": entry.name, **item}
        out.append(item)
    return out


def written_files(commands: list[str]) -> dict[str, str]:
    """path → content for each `shell.write_file` among the commands (its base64 payload)."""
    found = {}
    pattern = re.compile(r"printf '%s' ([A-Za-z0-9+/=]+) \| base64 -d > \"\$t\" .*? mv -fT \"\$t\" (\S+);")
    for command in commands:
        for payload, path in pattern.findall(command):
            found[shlex.split(path)[0]] = base64.b64decode(payload).decode()
    return found


@pytest.mark.parametrize("path", case_files(), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_step_case(path: Path):
    case, step, ctx, snapshot = load(path)
    assert ctx.host.role in step.roles, "the step does not apply to this host"
    assert sorted(plan.needs(ctx, [step])) == sorted(case["facts"]), \
        "a case gives exactly the facts the step reads"

    host_plan, sched = scheduled(ctx, step, snapshot, case.get("serving", ()))
    if case["status"] == "error":
        assert host_plan.failed and case["error"] in host_plan.failed[1]
        return
    assert host_plan.failed is None and host_plan.blocked is None
    assert as_data(sched, step.name) == case["changes"]
    assert ("changed" if case["changes"] else "ok") == case["status"]
    if "files" in case:
        assert written_files([c["command"] for c in case["changes"]]) == case["files"]


def test_every_step_has_cases_and_every_case_a_step():
    assert {p.parent.name for p in case_files()} == set(STEPS)


@pytest.mark.parametrize("path", [p for p in case_files()
                                  if json.loads(p.read_text())["status"] == "changed"],
                         ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_the_snapshot_a_plan_leaves_needs_no_more_change(path: Path):
    """Each planned change, applied to the snapshot, describes the host as the change leaves
    it: planning the step again on that snapshot plans nothing, or (after an install or an
    apt-get update) it must first gather again the facts the change made unknowable."""
    case, step, ctx, snapshot = load(path)
    first = plan.plan_host(ctx, [step], snapshot)
    read = {facts.kind_of(n) for n in step.needs(ctx)}
    forgetting = [c for _, items in first.planned for item in items
                  for c in plan.changes_of(item) if read & set(c.forgets)]
    again = plan.plan_host(ctx, [step], snapshot)
    if forgetting:
        assert isinstance(again.blocked, UnknownFact)
        assert again.blocked.because == forgetting[-1].summary
    else:
        assert again.blocked is None and again.failed is None
        assert again.planned == [(step, [])], "a second plan on the planned state changes nothing"


@pytest.mark.parametrize("path", [p for p in case_files() if p.parent.name in (
    "write-zk", "write-myid", "write-zoo-cfg", "set-quorum", "set-ip-hostname", "configure-marathon")
    and json.loads(p.read_text())["status"] == "changed"], ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_a_config_change_restarts_the_services_that_read_it(path: Path):
    """Planned after the config step on the same snapshot, start-services restarts exactly the
    services whose files the step writes (a restart mark is set on the host too)."""
    case, step, ctx, snapshot = load(path)
    start = STEPS["start-services"]
    for name in start.needs(ctx):
        if name not in snapshot.values:
            snapshot.values[name] = (facts.Service(True, True) if name.startswith("service:")
                                     else "systemd" if name == facts.INIT else None)
    snapshot.values.setdefault(facts.RESTART_MARKS, frozenset())
    result = plan.plan_host(ctx, [step, start], snapshot)
    restarted = {item.service for item in result.planned[1][1] if isinstance(item, Restart)}
    written = [c.command for c in result.planned[0][1]]
    marked = {m for command in written for m in re.findall(r"touch /var/lib/mesos-fab/restart/(\S+)", command)}
    assert restarted and restarted == marked - {"mesos-slave.agent-info"}


@pytest.mark.parametrize("version, expected", [
    ("1:1.4.8-1.0.660.debian90", (1, 4, 8)),
    ("1.6.322-2.0.145.debian90", (1, 6, 322)),
    ("0.15.3-1.0.455.ubuntu1404", (0, 15, 3)),
    ("3.4.5+dfsg-1", (3, 4, 5)),
    ("1.10rc1-1", (1, 10)),
    ("", ()),
])
def test_version_tuple(version, expected):
    assert version_tuple(version) == expected
