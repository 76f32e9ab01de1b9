"""Planning file writes from file facts: the piece every config step shares."""

from __future__ import annotations

from tasks import facts, report, shell
from tasks.runner import Change, StepError


def probes(paths: list[str], prefix: str = "file") -> dict[str, str]:
    return {f"{prefix}{i}": shell.read_file(p) for i, p in enumerate(paths)}


def plan(found: dict[str, facts.Probe], wanted: dict[str, str], *,
         restart: tuple[str, ...] = (), mode: str = "644", prefix: str = "file") -> list[Change]:
    """A write for each file whose content, mode or owner differs from what is wanted.

    `wanted` must be in the order given to `probes`.
    """
    changes = []
    for i, (path, content) in enumerate(wanted.items()):
        try:
            fact = facts.file_fact(found[f"{prefix}{i}"])
        except ValueError as exc:
            raise StepError(f"{path}: {exc}") from None
        if fact.exists and fact.content == content and (fact.mode, fact.owner, fact.group) == (mode, "root", "root"):
            continue
        if fact.exists and fact.content == content:
            summary = f"fix mode/owner of {path}"
        else:
            summary = f"write {path}"
        changes.append(Change(summary, shell.write_file(path, content, mode=mode, restart=restart),
                              report.unified_diff(path, fact.content if fact.exists else None, content)))
    return changes


def require(found: dict[str, facts.Probe], name: str, message: str) -> None:
    if not found[name].ok:
        raise StepError(message)
