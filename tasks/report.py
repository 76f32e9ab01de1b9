"""What the operator sees: one line per host and step, diffs in dry-run mode, a recap at the end.

Lines look like `master2 write-zoo-cfg changed`, like Ansible's PLAY RECAP operators already
read. The reporter is shared by the threads that work on hosts in parallel, hence the lock.
Text that comes from a host (its errors, its files in a diff) is shown with its control
characters escaped: a host must not be able to rewrite the operator's terminal.
"""

from __future__ import annotations

import difflib
import re
import threading
from collections import Counter, defaultdict

from tasks import progress

STATUSES = ("ok", "changed", "failed", "interrupted")
class Reporter:
    def __init__(self, stream=None):
        # Without a stream of its own, lines go through the progress board, which keeps its
        # live line (what a host waits for) below them.
        self.stream = stream
        self.counts: dict[str, Counter] = defaultdict(Counter)
        self.failures: list[tuple[str, str, str]] = []
        # (host, step, summary) of every change reported, applied or (dry run) planned: the
        # dry run's list and the real run's must be the same.
        self.changes: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()

    def step(self, host: str, step: str, status: str, detail: str = "",
             changes: list[str] = ()) -> None:
        assert status in STATUSES or status == "skipped"
        with self._lock:
            self.changes += [(host, step, summary) for summary in changes]
            if status in STATUSES:
                self.counts[host][status] += 1
            detail = progress.printable(detail)
            if status in ("failed", "interrupted"):
                self.failures.append((host, step, status, detail))
            text = f"{host} {step} {status}"
            if detail:
                text += ": " + detail if status in ("failed", "interrupted") else f" ({detail})"
            self._print(text)

    def show(self, text: str) -> None:
        """Free text (diffs, planned commands) printed whole, so threads do not interleave it."""
        text = progress.printable(text)
        with self._lock:
            self._print(text[:-1] if text.endswith("\n") else text)

    def _print(self, text: str) -> None:
        if self.stream is None:
            progress.println(text)
        else:
            print(text, file=self.stream, flush=True)

    def recap(self) -> str:
        if not self.counts:
            return ""
        width = max(len(h) for h in self.counts)
        rows = ["", "RECAP"]
        for host in self.counts:
            c = self.counts[host]
            row = f"{host:<{width}}  ok={c['ok']:<3} changed={c['changed']:<3} failed={c['failed']}"
            rows.append(row + (f" interrupted={c['interrupted']}" if c["interrupted"] else ""))
        for host, step, status, detail in self.failures:
            rows.append(f"{status.upper()} {host} {step}: {detail}")
        return "\n".join(rows)


# Variables whose values are secrets: credentials, passwords, tokens, keystore passes.
_SECRET_ASSIGNMENT = re.compile(
    r"^(\s*(?:export\s+)?[A-Za-z0-9_]*(?:CREDENTIAL|SECRET|PASS|TOKEN)[A-Za-z0-9_]*=).*$", re.I)
SECRET_SHOWN = "(secret, not shown)"


def unified_diff(path: str, old: str | None, new: str, mask: str | None = None) -> str:
    """Diff of a file's current and wanted text; a missing file diffs against /dev/null.
    `mask`: "values" shows every variable named like a secret with its value hidden (a
    changed secret still shows as a changed line), "whole" shows no line at all."""
    before = [] if old is None else old.splitlines(keepends=True)
    lines = list(difflib.unified_diff(before, new.splitlines(keepends=True),
                                      fromfile="/dev/null" if old is None else path, tofile=path))
    if mask == "whole" and lines:
        return f"{lines[0]}{lines[1]}{SECRET_SHOWN}: the file's content changes\n"
    if mask == "values":
        lines = lines[:2] + [line[0] + _SECRET_ASSIGNMENT.sub(r"\1" + SECRET_SHOWN, line[1:])
                             for line in lines[2:]]
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in lines)
