"""Planning file writes from file facts: the piece every config step shares."""

from __future__ import annotations

from tasks import facts, report, shell
from tasks.facts import Facts, File
from tasks.step import Change


def needs(paths: list[str]) -> list[str]:
    return [facts.file(p) for p in paths] + [facts.RESTART_MARKS]


def plan(found: Facts, wanted: dict[str, str], *, restart: tuple[str, ...] = (),
         mode: str = "644") -> list[Change]:
    """A write for each file whose content, mode or owner differs from what is wanted; each
    write marks the services in `restart` for a restart."""
    changes = []
    marks = found[facts.RESTART_MARKS] | frozenset(restart)
    for path, content in wanted.items():
        have = found[facts.file(path)]
        want = File(content, mode)
        if have == want:
            continue
        summary = f"fix mode/owner of {path}" if have and have.content == content else f"write {path}"
        changes.append(Change(
            summary, shell.write_file(path, content, mode=mode, restart=restart),
            report.unified_diff(path, have.content if have else None, content),
            sets={facts.file(path): want, facts.RESTART_MARKS: marks}))
    return changes
