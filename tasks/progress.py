"""Say what a long step is waiting for, on which host, and for how long so far.

On a terminal, one status line at the bottom is redrawn every second while anything waits
(`waiting 12 s: master1 install mesosphere; slave2 install mesos`), and every other line is
printed above it. Off a terminal (CI, a log file), output stays plain lines without control
characters: one when a wait starts, one when its state changes, one every `REMIND` seconds
while it lasts, and one when it ends. A wait started with `after=N` shows only once it has
lasted N seconds, so the many quick round trips of a run print nothing extra::

    with progress.waiting("deployment of /hello", host="marathon") as wait:
        while not done():
            wait.update("step 1/2, 0/2 tasks running")
            time.sleep(1)

Every printer in the tool goes through `println`, so the live line is never torn by another
thread's output, and what a server or a host sent cannot take the terminal over: control
characters are shown as escapes (`printable`).
"""

from __future__ import annotations

import itertools
import os
import re
import sys
import threading
import time
from contextlib import contextmanager

REMIND = 30.0       # off a terminal: a "still waiting" line this often
TICK = 1.0          # on a terminal: redraw the live line this often
CLEAR = "\r\x1b[K"
# What a server or a host may send that a terminal would obey: C0 and C1 controls (escape
# sequences recolour, move the cursor, retitle the window; a carriage return overwrites the
# line) and the bidirectional overrides that reorder what is shown. Newline and tab stay.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """`text` with its control characters written as escapes (\\x1b), so that nothing printed
    can take over the terminal it is printed on."""
    return _CONTROLS.sub(lambda m: m.group().encode("unicode_escape").decode(), text)


class Wait:
    def __init__(self, board: "Board", key: int, what: str, host: str, after: float):
        self.board, self.key, self.what, self.host = board, key, what, host
        self.state = ""
        self.started = self.reminded = time.monotonic()
        self.after = after
        self.shown = after <= 0

    @property
    def label(self) -> str:
        return f"{self.host} {self.what}" if self.host else self.what

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def update(self, state: str) -> None:
        """A new state text (e.g. "2/3 tasks running"); printed off a terminal when it changes."""
        self.board.update(self, state)


class Board:
    """The waits in progress and the one stream they are shown on."""

    def __init__(self, stream=None, tty: bool | None = None):
        self._stream, self._tty = stream, tty
        self.waits: dict[int, Wait] = {}
        self.keys = itertools.count()
        self.lock = threading.RLock()
        self.live = ""           # what the live line shows now (terminal only)
        self.ticker: threading.Thread | None = None

    @property
    def stream(self):
        # Looked up on each use: pytest and redirections replace sys.stdout after import.
        return self._stream or sys.stdout

    @property
    def tty(self) -> bool:
        if self._tty is not None:
            return self._tty
        try:
            return self.stream.isatty()
        except (AttributeError, ValueError):
            return False

    # -- output ------------------------------------------------------------------------------
    def println(self, text: str) -> None:
        """Print whole lines without tearing the live line (or other threads' lines)."""
        text = printable(text)
        with self.lock:
            if self.live:
                self.stream.write(CLEAR)
            self.stream.write(text if text.endswith("\n") else text + "\n")
            if self.live:
                self.stream.write(self.live)
            self.stream.flush()

    def _redraw(self) -> None:
        with self.lock:
            text = ""
            shown = [w for w in self.waits.values() if w.shown]
            if shown:
                oldest = max(w.elapsed() for w in shown)
                parts = [w.label + (f" ({w.state})" if w.state else "") for w in shown]
                text = printable(f"waiting {oldest:.0f} s: " + "; ".join(parts))
                width = _columns(self.stream) - 1
                text = text[:width]
            if text != self.live:
                self.stream.write(CLEAR + text)
                self.stream.flush()
                self.live = text

    def _tick(self) -> None:
        while True:
            time.sleep(TICK)
            with self.lock:
                if not self.waits:
                    self._redraw()
                    self.ticker = None
                    return
                now = time.monotonic()
                for w in self.waits.values():
                    if not w.shown and w.elapsed() >= w.after:
                        w.shown, w.reminded = True, now
                        if not self.tty:
                            self.println(f"{w.label}: waiting ... ({w.elapsed():.0f} s so far)"
                                         + (f" ({w.state})" if w.state else ""))
                if self.tty:
                    self._redraw()
                else:
                    for w in self.waits.values():
                        if w.shown and now - w.reminded >= REMIND:
                            w.reminded = now
                            self.println(f"{w.label}: still waiting after {w.elapsed():.0f} s"
                                         + (f" ({w.state})" if w.state else ""))

    # -- waits -------------------------------------------------------------------------------
    def start(self, what: str, host: str, after: float = 0.0) -> Wait:
        with self.lock:
            wait = Wait(self, next(self.keys), what, host, after)
            self.waits[wait.key] = wait
            if self.tty:
                self._redraw()
            elif wait.shown:
                self.println(f"{wait.label}: waiting ...")
            if self.ticker is None:
                self.ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
                self.ticker.start()
            return wait

    def update(self, wait: Wait, state: str) -> None:
        with self.lock:
            if state == wait.state:
                return
            wait.state = state
            if self.tty:
                self._redraw()
            elif wait.shown:
                self.println(f"{wait.label}: {state} ({wait.elapsed():.0f} s)")

    def finish(self, wait: Wait, outcome: str) -> None:
        with self.lock:
            self.waits.pop(wait.key, None)
            if self.tty:
                self._redraw()
            elif wait.shown:
                self.println(f"{wait.label}: {outcome} after {wait.elapsed():.0f} s")

    @contextmanager
    def waiting(self, what: str, host: str = "", after: float = 0.0):
        wait = self.start(what, host, after)
        outcome = "failed"
        try:
            yield wait
            outcome = "done"
        finally:
            self.finish(wait, outcome)


def _columns(stream) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 100


# One board for the process: every printer of the tool shares the terminal.
BOARD = Board()


def println(text: str) -> None:
    BOARD.println(text)


def waiting(what: str, host: str = "", after: float = 0.0):
    return BOARD.waiting(what, host, after)
