"""Every step, as data: recorded facts in, the exact commands out (pyinfra's model).

The cases are JSON files in tests/unit/cases/<step>/ (see the README there). Expected commands
are literal in the data, so a change in a `tasks.shell` builder or a plan shows up as a diff of
the case, to be read and accepted case by case.
"""

from __future__ import annotations

import base64
import json
import re
import shlex
from pathlib import Path

import pytest

from tasks import facts, inventory, playbooks
from tasks.runner import HostContext, StepError
from tasks.steps import service

CASES = Path(__file__).parent / "cases"

STEPS = {s.name: s for s in playbooks.STEPS}
STEPS[service.WAIT_ZOOKEEPER.name] = service.WAIT_ZOOKEEPER
STEPS["start-zookeeper"] = service.start_services_step(("zookeeper",))


def case_files() -> list[Path]:
    return sorted(p for p in CASES.glob("*/*.json"))


def load_case(path: Path) -> dict:
    data = json.loads(path.read_text())
    assert data["status"] in ("ok", "changed", "error"), path
    return data


def context(case: dict) -> HostContext:
    cluster = inventory.load(CASES / "inventories" / case["inventory"])
    return HostContext(cluster.find(case["host"]), cluster, case["init"])


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
    case = load_case(path)
    step = STEPS[path.parent.name]
    ctx = context(case)
    assert ctx.host.role in step.roles or not step.probes(ctx), "step does not apply to this host"

    probes = step.probes(ctx)
    assert sorted(probes) == sorted(case["facts"]), "the case's facts must be the step's probes"
    for name, command in case.get("probe_commands", {}).items():
        assert probes[name] == command, name

    found = {name: facts.Probe(f["rc"], f["out"]) for name, f in case["facts"].items()}
    if case["status"] == "error":
        with pytest.raises(StepError) as exc:
            step.plan(ctx, found)
        assert case["error"] in str(exc.value)
        return

    changes = step.plan(ctx, found)
    assert [{"summary": c.summary, "command": c.command} for c in changes] == case["changes"]
    assert ("changed" if changes else "ok") == case["status"]
    if "files" in case:
        assert written_files([c.command for c in changes]) == case["files"]


def test_plans_are_pure_and_repeatable():
    """Planning twice from the same facts gives the same commands (no hidden state)."""
    for path in case_files():
        case = load_case(path)
        if case["status"] == "error":
            continue
        step, ctx = STEPS[path.parent.name], context(case)
        found = {n: facts.Probe(f["rc"], f["out"]) for n, f in case["facts"].items()}
        assert step.plan(ctx, found) == step.plan(ctx, found), path


def test_enough_cases_for_every_step():
    by_step: dict[str, list[dict]] = {}
    for path in case_files():
        by_step.setdefault(path.parent.name, []).append(load_case(path))
    assert set(by_step) == set(STEPS), "every step (and the playbook's extra ones) has cases"
    assert sum(len(v) for v in by_step.values()) >= 30
    for name, cases in by_step.items():
        statuses = {c["status"] for c in cases}
        assert "ok" in statuses, f"{name}: no already-configured case"
        if name != "wait-zookeeper":   # a check: it never changes anything
            assert "changed" in statuses, f"{name}: no case with changes"
        inits = {c["init"] for c in cases}
        assert {"upstart", "systemd"} <= inits, f"{name}: both init systems"


def test_configured_hosts_need_no_change():
    """The idempotence promise: a host in the wanted state gets no command at all."""
    configured = [p for p in case_files() if "configured" in p.stem]
    assert len(configured) >= 12
    for path in configured:
        case = load_case(path)
        assert case["status"] == "ok" and case["changes"] == [], path


def test_every_write_marks_the_services_that_read_the_file():
    """A config step that writes must leave a restart mark, else start-services never restarts."""
    config_steps = {"write-zk", "write-myid", "write-zoo-cfg", "set-quorum", "set-ip-hostname",
                    "configure-marathon"}
    for path in case_files():
        case = load_case(path)
        if path.parent.name in config_steps and case["status"] == "changed":
            for change in case["changes"]:
                assert "touch /var/lib/mesos-fab/restart/" in change["command"], path


def test_written_files_helper():
    command = ("mkdir -p /etc/x && t=$(mktemp /etc/x/.y.XXXXXX) && { printf '%s' aGkK | base64 -d "
               "> \"$t\" && chown root:root \"$t\" && chmod 644 \"$t\" && mv -fT \"$t\" /etc/x/y; }"
               " || { rm -f \"$t\"; exit 1; }")
    assert written_files([command]) == {"/etc/x/y": "hi\n"}
