"""Scripts on a host, as root, over SSH: the one way the tool's commands reach a host.

    remote = Remote(SshProcesses(conn), login="sudo", host="master1")
    outcome = remote.run([(change.command, 1800), (gather, 120)], control)
    outcome.done, outcome.status, outcome.stdout

A round's commands are sent as one script on stdin, never on a command line, where any local
user of the host could read them (and the secrets some of them write) with `ps`. The only
command line is the supervisor (`shell.SUPERVISOR`), run as root: as is for a root login, else
through `sudo -n`, or `sudo -S` when Fabric has a sudo password (`sudo.password`,
`fab --prompt-for-sudo-password`); the password is sent only when sudo's own prompt
(`shell.SUPERVISOR`) appears, so it never reaches a shell. The supervisor runs each command
under its own time limit and reports `@@start I`, `@@done I`, and `@@wait TEXT` for what a
command waits for (the dpkg lock). The run's `Control` says stop (no further command starts:
`@@stopped I`) or cut (the running one is ended too: `@@cut I`); either ends with status 130.

A run's first round on a host also takes the host's run lock (`run_holding_lock`): the same
supervisor, behind a flock held until the run closes the process, so that round trip does both.

Locally every read is bounded too: by the commands' time limits plus a margin (a host that
stops answering is cut off and reported), and by the size of what a host may send.
"""

from __future__ import annotations

import secrets
import select
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Protocol

import paramiko

from tasks import shell

# Past its commands' own limits, how long a host may take to say they ended.
MARGIN = 30.0
# How long a host cut off for being late gets to say it ended, before it is reported anyway.
CUT_GRACE = 10.0
POLL = 0.5
# How long a failed round's stderr may keep arriving after its end.
DRAIN = 0.2
MAX_STDOUT = 16 * 1024 * 1024
STDERR_TAIL = 64 * 1024
# Markers are short lines; a longer line is output, never searched for one.
MAX_MARKER = 4096
# How long a host may keep the tool waiting on one SSH exchange (a command's start, stdin
# it does not read) before it counts as lost.
EXCHANGE_TIMEOUT = 30.0
# What a connection that broke raises, through paramiko or the socket under it.
LOST = (OSError, EOFError, paramiko.SSHException)
# What sudo says when -n meets a password it may not ask for.
_SUDO_NEEDS_PASSWORD = ("a password is required", "a terminal is required")


class RemoteError(Exception):
    """The script could not be run at all (no channel, sudo refused): the message says why."""


class Process(Protocol):
    """One command running on a host: its stdin, and its stdout/stderr as they arrive."""

    def send(self, data: bytes) -> None: ...

    def shutdown_write(self) -> None: ...

    def poll(self, timeout: float) -> tuple[bytes, bytes, int | None]:
        """What arrived within `timeout` (stdout, stderr); the exit status once it ended and
        everything it wrote was read, else None."""

    def close(self) -> None: ...


class Control:
    """What the operator asked of the whole run: go on, stop (no further step starts on any
    host), or cut (the running ones end too). Set from signal handlers; read by every host."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.cut = threading.Event()

    def request_stop(self) -> None:
        self.stop.set()

    def request_cut(self) -> None:
        self.stop.set()
        self.cut.set()


@dataclass
class Outcome:
    status: int                     # the script's exit status; 130 when stopped or cut
    done: int = 0                   # how many commands completed
    running: int | None = None      # the command that was running when it ended
    stopped: bool = False           # ended by a stop before command `done`
    cut: bool = False               # ended by a cut during command `running`
    stdout: str = ""
    stderr: str = ""                # the last STDERR_TAIL bytes
    error: str = ""                 # why it could not run or be read to its end

    def reason(self) -> str:
        """One line on why it failed."""
        if self.error:
            return self.error
        text = _tail(self.stderr) or _tail("\n".join(
            line for line in self.stdout.splitlines() if not line.startswith("@@")))
        return f"{text} (exit {self.status})" if text else f"exit {self.status}"


@dataclass
class Remote:
    """One host, reached as `login` (`shell.LOGINS`) through `processes` (an SSH connection)."""
    processes: "Processes"
    login: str
    host: str
    password: str | None = field(default=None, repr=False)
    on_wait: Callable[[str, str | None], None] = lambda host, text: None

    def run(self, units: list[tuple[str, int]], control: Control) -> Outcome:
        """Run the commands in order (each with its limit in seconds) in one round trip."""
        script = shell.round_script(units).encode()
        proc = self._start(shell.supervised(len(script), self.login))
        try:
            return self._drive(proc, _Reader(), script, _budget(units), control)
        finally:
            proc.close()

    def run_holding_lock(self, holder: str, wait: bool, units: list[tuple[str, int]],
                         control: Control, on_held: Callable[[str], None]
                         ) -> tuple[Outcome, "Process"]:
        """Take the host's run lock (`shell.RUN_LOCK`) and, in the same round trip, run the
        commands as `run` does. Returns their outcome and the process that holds the lock
        (closing it releases the lock). When another run holds it: RemoteError naming the
        holder, or (`wait`) `on_held(holder)` and wait for it, until `control` says stop."""
        script = shell.round_script(units).encode()
        # The round's end is told by a marker its own commands cannot print by chance.
        end = secrets.token_hex(8)
        proc = self._start(shell.supervised_holding_lock(holder, wait, len(script), end,
                                                         self.login))
        reader = _Reader(end_token=end)
        try:
            self._take_lock(proc, reader, wait, control, on_held)
            outcome = self._drive(proc, reader, script, _budget(units), control)
        except RemoteError:
            proc.close()
            raise
        return outcome, proc

    # --- the pieces ---------------------------------------------------------------------

    def _take_lock(self, proc: "Process", reader: "_Reader", wait: bool, control: Control,
                   on_held: Callable[[str], None]) -> None:
        """Until the lock is taken (`@@locked`); RemoteError when it is not."""
        # Waiting for another run is the operator's choice (--wait-lock; Ctrl-C ends it);
        # otherwise the answer is quick, and a host that gives none is given up.
        deadline = None if wait else time.monotonic() + EXCHANGE_TIMEOUT
        try:
            while True:
                status = self._poll(proc, reader)
                if reader.held is not None and not reader.held_reported:
                    reader.held_reported = True
                    if wait:
                        on_held(reader.held)
                if reader.locked:
                    return
                if status is not None:
                    if reader.held is not None:
                        raise RemoteError(f"another run holds the lock {shell.RUN_LOCK}: "
                                          f"{reader.held or 'no details'}; it has to end "
                                          "first (or give --wait-lock to wait for it)")
                    raise RemoteError(f"cannot take the lock {shell.RUN_LOCK}: "
                                      f"{_tail(reader.stderr_text()) or 'no reason given'} "
                                      f"(exit {status})")
                if control.stop.is_set():
                    raise RemoteError("interrupted while waiting for the run lock")
                if deadline is not None and time.monotonic() > deadline:
                    raise RemoteError(f"no answer about the lock {shell.RUN_LOCK} within "
                                      f"{EXCHANGE_TIMEOUT:g} s")
        except LOST as exc:
            raise RemoteError(f"connection lost: {exc}") from None

    def _drive(self, proc: "Process", reader: "_Reader", script: bytes, budget: float,
               control: Control) -> Outcome:
        """Send the script once the supervisor is ready, pass on the run's stop or cut, and
        read until the round ends: the process's exit, or the lock holder's `@@end` line
        (it goes on holding the lock)."""
        sent = stop_sent = cut_sent = False
        deadline = time.monotonic() + budget
        try:
            while True:
                # Before the read: `@@ready` may have come with `@@locked`, and then nothing
                # more comes until the script is sent.
                if reader.ready and not sent:
                    proc.send(script)
                    sent = True
                status = self._poll(proc, reader)
                for text in reader.take_waits():
                    self.on_wait(self.host, text)
                if reader.ended is not None:
                    status = reader.ended
                    if status != 0:
                        self._drain(proc, reader)
                if status is not None:
                    return self._outcome(status, reader, cut_sent)
                if reader.too_big:
                    proc.close()
                    return Outcome(-1, reader.done, error=(
                        f"the host sent more than {MAX_STDOUT} bytes of output: cut off"))
                if sent and control.cut.is_set() and not cut_sent:
                    proc.send(b"cut\n")
                    cut_sent = stop_sent = True
                elif sent and control.stop.is_set() and not stop_sent:
                    proc.send(b"stop\n")
                    stop_sent = True
                if time.monotonic() > deadline:
                    return self._overdue(proc, reader, budget)
        except RemoteError as exc:
            return Outcome(1, stderr=reader.stderr_text(), error=str(exc))
        except LOST as exc:
            return Outcome(-1, reader.done, reader.running, stdout=reader.stdout_text(),
                           stderr=reader.stderr_text(), error=f"connection lost: {exc}")
        finally:
            self.on_wait(self.host, None)

    def _start(self, command: str) -> "Process":
        try:
            return self.processes.start(command)
        except LOST as exc:
            raise RemoteError(f"cannot start a command: {exc}") from None

    def _poll(self, proc: "Process", reader: "_Reader") -> int | None:
        """Read what arrived (sudo's prompt answered on the way); the exit status once the
        command ended. RemoteError when sudo will not run it."""
        out, err, status = proc.poll(POLL)
        reader.feed(out, err)
        problem = self._sudo(reader, proc)
        if problem:
            raise RemoteError(problem)
        return status

    def _sudo(self, reader: "_Reader", proc: "Process") -> str:
        """Answer sudo's prompt once with the password; a second prompt means it was refused.
        Returns why sudo cannot go on, or ''."""
        if reader.prompts > reader.answered:
            if self.password is None or reader.answered:
                proc.shutdown_write()       # sudo ends at once instead of asking again
                return (f"sudo on {self.host} refused the password (Fabric's sudo.password)"
                        if reader.answered else f"sudo on {self.host} asks for a password")
            proc.send(self.password.encode() + b"\n")
            reader.answered += 1
        if not reader.ready and any(m in reader.stderr_text() for m in _SUDO_NEEDS_PASSWORD):
            return (f"sudo on {self.host} needs a password: give it with "
                    "`fab --prompt-for-sudo-password ...` (or sudo.password in the Fabric "
                    "configuration), or let the login run sudo without one (NOPASSWD)")
        return ""

    def _outcome(self, status: int, reader: "_Reader", cut_sent: bool) -> Outcome:
        outcome = Outcome(status, reader.done, reader.running, stdout=reader.stdout_text(),
                          stderr=reader.stderr_text())
        outcome.stopped = reader.stopped_at is not None
        outcome.cut = reader.cut_at is not None or (cut_sent and status != 0)
        if status == 125 and not reader.ready:
            outcome.error = f"cannot run the script: {_tail(outcome.stderr) or 'exit 125'}"
        return outcome

    @staticmethod
    def _drain(proc: "Process", reader: "_Reader") -> None:
        """What a lock holder's failed round still writes after `@@end`: its stderr is a
        stream of its own, which can arrive after stdout's last line, and it says why."""
        while True:
            out, err, status = proc.poll(DRAIN)
            reader.feed(out, err)
            if status is not None or not (out or err):
                return

    def _overdue(self, proc: "Process", reader: "_Reader", budget: float) -> Outcome:
        """A host past every limit of its commands: tell it to cut, give it a moment, and
        report it, whether or not it answers."""
        try:
            proc.send(b"cut\n")
            end = time.monotonic() + CUT_GRACE
            while time.monotonic() < end:
                out, err, status = proc.poll(POLL)
                reader.feed(out, err)
                if status is not None or reader.ended is not None:
                    break
        except LOST:
            pass
        return Outcome(-1, reader.done, reader.running, stdout=reader.stdout_text(),
                       stderr=reader.stderr_text(),
                       error=f"no end of the commands within {budget:.0f} s (their time "
                             "limits and a margin): cut off")


class Processes(Protocol):
    def start(self, command: str) -> Process: ...


class _Reader:
    """The supervisor's output as it arrives: markers, sudo prompts, bounded buffers."""

    def __init__(self, end_token: str | None = None) -> None:
        self.end_token = end_token      # a lock holder's round ends with `@@end TOKEN STATUS`
        self.out = bytearray()
        self.err = bytearray()
        self.partial = b""
        self.ready = self.locked = self.too_big = False
        self.held: str | None = None
        self.held_reported = False
        self.ended: int | None = None     # the status in the lock holder's `@@end`
        self.done = 0
        self.running: int | None = None
        self.stopped_at: int | None = None
        self.cut_at: int | None = None
        self.prompts = self.answered = 0
        self.waits: list[str] = []
        self._prompt = shell.SUDO_PROMPT.encode()
        self._carry = b""

    def feed(self, out: bytes, err: bytes) -> None:
        if err:
            # Prompts are counted on everything seen (one may span two reads), not only on
            # the tail that is kept.
            seen = self._carry + err
            self.prompts += seen.count(self._prompt)
            self._carry = seen[-(len(self._prompt) - 1):]
            self.err += err
            del self.err[:-STDERR_TAIL]
        if not out:
            return
        if len(self.out) + len(out) > MAX_STDOUT:
            self.too_big = True
            return
        self.out += out
        lines = out.split(b"\n")
        lines[0] = self.partial + lines[0]
        self.partial = lines.pop()[:MAX_MARKER]
        for line in lines:
            if len(line) <= MAX_MARKER:
                self._marker(line.decode("utf-8", "replace"))

    def _marker(self, line: str) -> None:
        word, _, rest = line.partition(" ")
        if word == "@@ready":
            self.ready = True
        elif word == "@@start" and rest.isdigit():
            self.running = int(rest)
        elif word == "@@done" and rest.isdigit():
            self.done, self.running = int(rest) + 1, None
        elif word == "@@stopped" and rest.isdigit():
            self.stopped_at, self.running = int(rest), None
        elif word == "@@cut" and rest.isdigit():
            self.cut_at = int(rest)
        elif word == "@@wait":
            self.waits.append(rest)
        elif word == "@@locked":
            self.locked = True
        elif word == "@@end" and self.ready and self.end_token is not None:
            token, _, status = rest.partition(" ")
            if token == self.end_token and status.isdigit():
                self.ended = int(status)
        elif word == "@@held":
            self.held = rest

    def take_waits(self) -> list[str]:
        waits, self.waits = self.waits, []
        return waits

    def stdout_text(self) -> str:
        return self.out.decode("utf-8", "replace")

    def stderr_text(self) -> str:
        return self.err.decode("utf-8", "replace").replace(shell.SUDO_PROMPT, "")


class SshProcesses:
    """Commands on an open SSH connection (a `fabric.Connection` opened by `tasks.ssh`)."""

    def __init__(self, conn) -> None:
        self.conn = conn

    def start(self, command: str) -> Process:
        channel = self.conn.client.get_transport().open_session(timeout=EXCHANGE_TIMEOUT)
        # A host that never answers the exec request would hold paramiko forever: closing
        # the channel ends its wait (with SSHException "Channel closed.").
        watchdog = threading.Timer(EXCHANGE_TIMEOUT, ChannelProcess(channel).close)
        watchdog.start()
        try:
            channel.exec_command(command)
        finally:
            watchdog.cancel()
        channel.settimeout(EXCHANGE_TIMEOUT)   # a host that stops reading its stdin
        return ChannelProcess(channel)


class ChannelProcess:
    def __init__(self, channel) -> None:
        self.channel = channel

    def send(self, data: bytes) -> None:
        self.channel.sendall(data)

    def shutdown_write(self) -> None:
        self.channel.shutdown_write()

    def poll(self, timeout: float) -> tuple[bytes, bytes, int | None]:
        ch = self.channel
        # The channel's fileno is signalled by stdout and stderr data, and by its end.
        select.select([ch], [], [], timeout)
        out = ch.recv(65536) if ch.recv_ready() else b""
        err = ch.recv_stderr(65536) if ch.recv_stderr_ready() else b""
        if out or err:
            return out, err, None
        if ch.exit_status_ready() and (ch.eof_received or ch.closed):
            status = ch.recv_exit_status()
            # paramiko's -1: the channel closed without an exit status (the connection died).
            if status >= 0:
                return b"", b"", status
        if ch.closed:
            raise EOFError("the connection closed before the command ended")
        return b"", b"", None

    def close(self) -> None:
        # On a connection that is already gone (the host cut it, sudo's refusal among the
        # causes) paramiko raises from close: the channel is closed all the same.
        try:
            self.channel.close()
        except LOST:
            pass


def _budget(units: list[tuple[str, int]]) -> float:
    """How long a round may take: its commands' limits, their kill delays and a margin."""
    return sum(seconds + shell.KILL_AFTER for _, seconds in units) + MARGIN


def _tail(text: str, lines: int = 8) -> str:
    return " | ".join(t.strip() for t in text.strip().splitlines()[-lines:] if t.strip())
