"""What the operator sees: one line per host and step, diffs in dry-run mode, a recap at the end.

Lines look like `master2 write-zoo-cfg changed`, like Ansible's PLAY RECAP operators already
read. The reporter is shared by the threads that work on hosts in parallel, hence the lock.
"""

from __future__ import annotations

import difflib
import threading
from collections import Counter, defaultdict

from tasks import progress

STATUSES = ("ok", "changed", "failed")


class Reporter:
    def __init__(self, stream=None):
        self.stream = stream        # None: the terminal, shared with the live progress line
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
            if status == "failed":
                self.failures.append((host, step, detail))
            text = f"{host} {step} {status}"
            if detail:
                text += ": " + detail if status == "failed" else f" ({detail})"
            self._print(text)

    def show(self, text: str) -> None:
        """Free text (diffs, planned commands) printed whole, so threads do not interleave it."""
        with self._lock:
            self._print(text)

    def _print(self, text: str) -> None:
        if self.stream is None:
            progress.println(text)
        else:
            print(text, file=self.stream, end="" if text.endswith("\n") else "\n", flush=True)

    def recap(self) -> str:
        if not self.counts:
            return ""
        width = max(len(h) for h in self.counts)
        rows = ["", "RECAP"]
        for host in self.counts:
            c = self.counts[host]
            rows.append(f"{host:<{width}}  ok={c['ok']:<3} changed={c['changed']:<3} failed={c['failed']}")
        for host, step, detail in self.failures:
            rows.append(f"FAILED {host} {step}: {detail}")
        return "\n".join(rows)


def unified_diff(path: str, old: str | None, new: str) -> str:
    """Diff of a file's current and wanted text; a missing file diffs against /dev/null."""
    before = [] if old is None else old.splitlines(keepends=True)
    lines = difflib.unified_diff(before, new.splitlines(keepends=True),
                                 fromfile="/dev/null" if old is None else path, tofile=path)
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in lines)
