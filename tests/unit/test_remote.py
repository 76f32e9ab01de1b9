"""tasks.remote over real SSH (tests/unit/ssh_server.py runs the commands with this machine's
sh): scripts on stdin and never on a command line, each command under its own time limit,
stop and cut, a lost connection, sudo with and without a password, the run lock, and the
bounds on what a host may send or how long it may take."""

from __future__ import annotations

import os
import shlex
import signal
import threading
import time

import pytest
from fabric import Config

from tasks import remote, shell, ssh
from tasks.remote import Control, Remote, RemoteError, SshProcesses
from tests.unit.ssh_server import with_fake_sudo

@pytest.fixture
def server(tmp_path, monkeypatch):
    srv = with_fake_sudo(tmp_path, monkeypatch, FAKE_SUDO_PASSWORD="s3cret-pw")
    yield srv
    srv.close()


def connect(server, tmp_path, user="root"):
    known = tmp_path / "known_hosts"
    known.write_text(server.known_hosts_line())
    config = Config(overrides={"connect_kwargs": {"password": "x", "look_for_keys": False,
                                                  "allow_agent": False},
                               "load_ssh_configs": False})
    conn = ssh.connect("127.0.0.1", server.port, user, config, known_hosts=str(known))
    ssh.open_verified(conn)
    return conn


@pytest.fixture
def conn(server, tmp_path):
    c = connect(server, tmp_path)
    yield c
    c.close()


def remote_for(conn, login="root", password=None, waits=None):
    return Remote(SshProcesses(conn), login, "h1", password,
                  on_wait=lambda host, text: waits.append(text) if waits is not None else None)


def later(seconds, fn):
    timer = threading.Timer(seconds, fn)
    timer.start()
    return timer


def wait_for_file(path, timeout=10):
    end = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.05)


def test_commands_run_in_order_from_stdin_and_never_on_a_command_line(server, conn, tmp_path):
    out = tmp_path / "out"
    units = [(f"echo one >> {out}", 5), (f"echo 'SECRET-VALUE' >> {out}", 5),
             ("echo gathered", 5)]
    outcome = remote_for(conn).run(units, Control())
    assert outcome.status == 0 and outcome.done == 3
    assert out.read_text() == "one\nSECRET-VALUE\n"
    assert "gathered\n" in outcome.stdout
    [command] = server.commands
    assert "SECRET-VALUE" not in command and "echo one" not in command
    assert list(tmp_path.glob("tmp*")) == [], "the private directory is removed"


def test_a_failing_command_stops_the_script_with_its_status_and_error(conn, tmp_path):
    out = tmp_path / "out"
    outcome = remote_for(conn).run(
        [("true", 5), ("echo 'E: no such package' >&2; exit 100", 5), (f"touch {out}", 5)],
        Control())
    assert (outcome.status, outcome.done) == (100, 1)
    assert outcome.reason() == "E: no such package (exit 100)"
    assert not out.exists()


def test_a_command_past_its_limit_is_killed_with_its_children(conn, tmp_path):
    out = tmp_path / "out"
    started = time.monotonic()
    outcome = remote_for(conn).run([(f"sh -c 'sleep 30; touch {out}' & wait", 1)], Control())
    assert outcome.status == 124 and outcome.done == 0
    assert "timed out after 1 s" in outcome.reason()
    assert time.monotonic() - started < 10
    time.sleep(0.5)
    assert not out.exists()


def test_stop_lets_the_running_command_finish_and_starts_no_other(conn, tmp_path):
    first, second, started = tmp_path / "first", tmp_path / "second", tmp_path / "started"
    control = Control()
    timer = threading.Thread(target=lambda: (wait_for_file(started), control.request_stop()))
    timer.start()
    outcome = remote_for(conn).run(
        [(f"touch {started}; sleep 1; touch {first}", 10), (f"touch {second}", 10)], control)
    timer.join()
    assert first.exists() and not second.exists()
    assert outcome.status == 130 and outcome.stopped and outcome.done == 1


def test_cut_ends_the_running_command_at_once(conn, tmp_path):
    done, started = tmp_path / "done", tmp_path / "started"
    control = Control()
    timer = threading.Thread(target=lambda: (wait_for_file(started), control.request_cut()))
    timer.start()
    begin = time.monotonic()
    outcome = remote_for(conn).run([(f"touch {started}; sleep 30; touch {done}", 60)], control)
    timer.join()
    assert time.monotonic() - begin < 10
    assert outcome.status == 130 and outcome.cut and outcome.running == 0 and outcome.done == 0
    time.sleep(0.3)
    assert not done.exists()


def test_a_lost_connection_lets_the_running_command_finish_and_starts_no_other(
        server, conn, tmp_path):
    first, second, started = tmp_path / "first", tmp_path / "second", tmp_path / "started"
    closer = threading.Thread(target=lambda: (wait_for_file(started), conn.client.close()))
    closer.start()
    outcome = remote_for(conn).run(
        [(f"touch {started}; sleep 1; touch {first}", 10), (f"touch {second}", 10)], Control())
    closer.join()
    assert outcome.error.startswith("connection lost")
    wait_for_file(first)
    time.sleep(1)
    assert not second.exists()


def test_sudo_without_a_password(server, tmp_path):
    server.env["FAKE_SUDO_NOPASSWD"] = "1"
    conn = connect(server, tmp_path, user="ops")
    outcome = remote_for(conn, "sudo").run([("echo hi", 5)], Control())
    conn.close()
    assert outcome.status == 0 and "hi\n" in outcome.stdout
    assert server.commands[0].startswith("sudo -n -- sh -c ")
    assert server.users == ["ops"]


def test_sudo_that_needs_a_password_says_how_to_give_one(server, tmp_path):
    conn = connect(server, tmp_path, user="ops")
    outcome = remote_for(conn, "sudo").run([("echo hi", 5)], Control())
    conn.close()
    assert outcome.status != 0
    assert outcome.error == ("sudo on h1 needs a password: give it with `fab "
                             "--prompt-for-sudo-password ...` (or sudo.password in the Fabric "
                             "configuration), or let the login run sudo without one (NOPASSWD)")


def test_sudo_password_is_sent_only_to_sudos_prompt(server, tmp_path):
    out = tmp_path / "out"
    conn = connect(server, tmp_path, user="ops")
    outcome = remote_for(conn, "sudo-password", "s3cret-pw").run([(f"echo ok > {out}", 5)],
                                                                  Control())
    conn.close()
    assert outcome.status == 0 and out.read_text() == "ok\n"
    assert "s3cret-pw" not in outcome.stdout + outcome.stderr + " ".join(server.commands)
    assert shell.SUDO_PROMPT not in outcome.stderr


def test_a_wrong_sudo_password_is_refused_once_and_never_shown(server, tmp_path):
    out = tmp_path / "out"
    conn = connect(server, tmp_path, user="ops")
    started = time.monotonic()
    outcome = remote_for(conn, "sudo-password", "wrong-pw").run([(f"touch {out}", 5)], Control())
    conn.close()
    assert outcome.error == "sudo on h1 refused the password (Fabric's sudo.password)"
    assert time.monotonic() - started < 5
    assert "wrong-pw" not in outcome.stdout + outcome.stderr + outcome.error
    assert not out.exists()


def test_waits_are_reported_as_they_happen(conn):
    waits = []
    outcome = remote_for(conn, waits=waits).run(
        [("echo '@@wait the dpkg lock: held by 42'; sleep 0.6; echo '@@wait still'", 5)],
        Control())
    assert outcome.status == 0
    assert waits == ["the dpkg lock: held by 42", "still", None]


def hold_lock(conn, holder, wait=False, held=None, units=(), control=None):
    """Take the run lock with `units` as the round run under it; the process holding it."""
    outcome, process = remote_for(conn).run_holding_lock(
        holder, wait, list(units), control or Control(),
        on_held=held.append if held is not None else None)
    assert outcome.status == 0, outcome
    return process


def test_the_run_lock_names_its_holder_to_a_second_run(server, conn, tmp_path):
    first = hold_lock(conn, "fab pid 1 on box, started today")
    second_conn = connect(server, tmp_path)
    with pytest.raises(RemoteError) as exc:
        hold_lock(second_conn, "fab pid 2")
    assert str(exc.value).startswith(
        f"another run holds the lock {shell.RUN_LOCK}: fab pid 1 on box, started today "
        "(pid ")
    assert "--wait-lock" in str(exc.value)
    first.shutdown_write()
    first.close()
    # Released: the next run gets it.
    deadline = time.monotonic() + 5
    while True:
        try:
            third = hold_lock(second_conn, "fab pid 3")
            break
        except RemoteError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    third.close()
    second_conn.close()


def test_the_round_under_the_lock_runs_and_the_lock_is_held_after_it(server, conn, tmp_path):
    out = tmp_path / "out"
    outcome, first = remote_for(conn).run_holding_lock(
        "fab pid 1", False, [(f"echo one > {out}", 5), ("echo gathered; exit 3", 5)],
        Control(), on_held=None)
    # The round's own status and output, while the holder goes on.
    assert (outcome.status, outcome.done) == (3, 1)
    assert out.read_text() == "one\n" and "gathered\n" in outcome.stdout
    with open(shell.RUN_LOCK) as lock:     # an independent reader of the lock file
        assert lock.read().startswith("fab pid 1 (pid ")
    second_conn = connect(server, tmp_path)
    with pytest.raises(RemoteError, match="another run holds the lock"):
        hold_lock(second_conn, "fab pid 2")
    first.shutdown_write()
    first.close()
    second_conn.close()


def test_the_round_under_the_lock_ends_only_at_its_own_end(conn, monkeypatch):
    """Its commands cannot end it early by printing an end line, nor late by leaving their
    last line without a newline."""
    monkeypatch.setattr(remote, "MARGIN", 3.0)
    outcome, holder = remote_for(conn).run_holding_lock("fab pid 1", False, [
        ("echo '@@end 0'; echo '@@end 0123456789abcdef 0'; sleep 0.3; echo after", 5),
        ("printf 'no newline'", 5)], Control(), on_held=None)
    holder.close()
    assert (outcome.status, outcome.done, outcome.error) == (0, 2, "")
    assert "after\n" in outcome.stdout and "no newline" in outcome.stdout


def test_a_failed_round_under_the_lock_says_why(conn):
    outcome, holder = remote_for(conn).run_holding_lock(
        "fab pid 1", False, [("echo 'E: the reason' >&2; exit 3", 5)], Control(), on_held=None)
    holder.close()
    assert outcome.status == 3
    assert outcome.reason() == "E: the reason (exit 3)"


def test_a_daemon_started_under_the_lock_does_not_keep_it(server, conn, tmp_path):
    """The round's commands do not inherit the lock's descriptor: once the run ends, the lock
    is free even though something the round started still runs."""
    pid = tmp_path / "daemon.pid"
    first = hold_lock(conn, "fab pid 1", units=[(
        f"(sleep 30 </dev/null >/dev/null 2>&1 & echo $! > {pid})", 5)])
    first.shutdown_write()
    first.close()
    try:
        deadline = time.monotonic() + 5
        while True:
            try:
                hold_lock(conn, "fab pid 2").close()
                break
            except RemoteError:
                assert time.monotonic() < deadline, "the daemon kept the run lock"
                time.sleep(0.1)
    finally:
        os.kill(int(pid.read_text()), signal.SIGTERM)


def test_wait_lock_waits_for_the_holder(server, conn, tmp_path):
    first = hold_lock(conn, "fab pid 1")
    second_conn = connect(server, tmp_path)
    held = []
    out = tmp_path / "out"
    releaser = later(1.0, lambda: (first.shutdown_write(), first.close()))
    started = time.monotonic()
    second = hold_lock(second_conn, "fab pid 2", wait=True, held=held,
                       units=[(f"date +%s.%N > {out}", 5)])
    assert time.monotonic() - started >= 0.9
    assert held and held[0].startswith("fab pid 1 (pid ")
    # The round ran only once the lock was taken.
    assert float(out.read_text()) >= time.time() - (time.monotonic() - started) + 0.9
    releaser.join()
    second.close()
    second_conn.close()


def test_a_host_that_does_not_answer_the_exec_request_is_given_up(server, conn, monkeypatch):
    monkeypatch.setattr(remote, "EXCHANGE_TIMEOUT", 1.0)
    server.exec_delay = 4
    started = time.monotonic()
    with pytest.raises(RemoteError, match="cannot start a command: Channel closed"):
        remote_for(conn).run([("true", 5)], Control())
    assert time.monotonic() - started < 3


def test_a_host_that_says_nothing_about_the_lock_is_given_up(monkeypatch):
    monkeypatch.setattr(remote, "EXCHANGE_TIMEOUT", 0.5)
    monkeypatch.setattr(remote, "POLL", 0.05)
    with pytest.raises(RemoteError, match="no answer about the lock .* within 0.5 s"):
        Remote(Silent(), "root", "h1").run_holding_lock("fab pid 1", False, [], Control(), None)


class Silent:
    """A host that takes the script and then never answers again."""

    def __init__(self):
        self.sent = []

    def start(self, command):
        return self

    def send(self, data):
        self.sent.append(data)

    def shutdown_write(self):
        pass

    def poll(self, timeout):
        time.sleep(min(timeout, 0.05))
        return (b"@@ready\n" if not self.sent else b""), b"", None

    def close(self):
        pass


def test_a_host_that_stops_answering_is_cut_off_after_its_limits(monkeypatch):
    monkeypatch.setattr(remote, "MARGIN", 0.5)
    monkeypatch.setattr(remote, "CUT_GRACE", 0.2)
    monkeypatch.setattr(remote, "POLL", 0.05)
    monkeypatch.setattr(shell, "KILL_AFTER", 0)
    silent = Silent()
    r = Remote(silent, "root", "h1")
    started = time.monotonic()
    outcome = r.run([("true", 1)], Control())
    assert outcome.error.startswith("no end of the commands within 2 s")
    assert 1.4 < time.monotonic() - started < 5
    assert silent.sent[-1] == b"cut\n"


def test_a_host_that_floods_its_output_is_cut_off(conn, monkeypatch):
    monkeypatch.setattr(remote, "MAX_STDOUT", 200_000)
    outcome = remote_for(conn).run([("yes flood | head -c 10000000", 10)], Control())
    assert outcome.error == "the host sent more than 200000 bytes of output: cut off"


def test_closing_a_command_whose_connection_is_gone_does_not_raise(conn):
    """sudo's refusal of a password can leave the connection closed under the lock's command:
    closing that command must not end fab with paramiko's EOFError."""
    proc = SshProcesses(conn).start("sleep 5")
    conn.client.get_transport().sock.close()
    proc.close()
    assert proc.channel.closed


class Prompt:
    """A lock holder whose `@@locked` and `@@ready` arrive in one read (as they do when the
    host writes them within a moment), and which answers only once it has the script."""

    def __init__(self):
        self.calls = []

    def start(self, command):
        self.end = shlex.split(command)[-1]     # the round's end marker
        return self

    def send(self, data):
        self.calls.append("send")

    def shutdown_write(self):
        pass

    def poll(self, timeout):
        self.calls.append("poll")
        if self.calls.count("poll") == 1:
            return b"@@locked\n@@ready\n", b"", None
        if "send" not in self.calls:
            time.sleep(timeout)     # a host waiting for its script
            return b"", b"", None
        return f"@@done 0\n@@end {self.end} 0\n".encode(), b"", None

    def close(self):
        pass


def test_the_script_is_sent_as_soon_as_the_lock_holder_is_ready():
    host = Prompt()
    outcome, _ = Remote(host, "root", "h1").run_holding_lock("fab pid 1", False, [("true", 5)],
                                                            Control(), None)
    assert outcome.status == 0 and outcome.done == 1
    # No read waits for an answer before the script went out.
    assert host.calls[:3] == ["poll", "send", "poll"]
