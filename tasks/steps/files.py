"""Planning file writes from file facts: the piece every config step shares."""

from __future__ import annotations

from tasks import facts, report, shell
from tasks.facts import Facts, File
from tasks.step import Change


def needs(paths: list[str]) -> list[str]:
    return [facts.file(p) for p in paths] + [facts.RESTART_MARKS]


# How a file that can hold secrets is shown in a diff (`report.unified_diff`): every value
# of a variable named like a secret masked, or nothing of it at all.
SECRET_VALUES, SECRET = "values", "whole"


def plan(found: Facts, wanted: dict[str, str], *, restart: tuple[str, ...] = (),
         private: dict[str, str] = {}) -> list[Change]:
    """A write for each file whose content, mode or owner differs from what is wanted; each
    write marks the services in `restart` for a restart. The `private` files (path → how
    their diff is masked: SECRET_VALUES or SECRET) are 0600, the others 0644."""
    changes = []
    marks = found[facts.RESTART_MARKS] | frozenset(restart)
    for path, content in wanted.items():
        have = found[facts.file(path)]
        mode = "600" if path in private else "644"
        want = File(content, mode)
        if have == want:
            continue
        summary = f"fix mode/owner of {path}" if have and have.content == content else f"write {path}"
        changes.append(Change(
            summary, shell.write_file(path, content, mode=mode, restart=restart),
            report.unified_diff(path, have.content if have else None, content,
                                mask=private.get(path)),
            sets={facts.file(path): want, facts.RESTART_MARKS: marks}))
    return changes
