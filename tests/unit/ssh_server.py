"""A real SSH server on loopback that runs what it is asked with this machine's `sh`, the way
sshd does: the command's stdin, stdout, stderr and exit status travel over the channel, and a
channel the client closes ends the command's stdin.

Test equipment for tasks.ssh and tasks.remote: paramiko's server side, with a fresh host key.
`env` is the commands' environment; `with_fake_sudo` puts a stand-in `sudo` first in its
PATH. Every command line it was asked to run is recorded in `commands`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time

import paramiko


# A stand-in for sudo with the options the tool uses: -n (no password: refused unless
# FAKE_SUDO_NOPASSWD) and -S -p PROMPT (the prompt on stderr, the password read from stdin
# a byte at a time, as sudo does, three tries; FAKE_SUDO_PASSWORD is the right one).
FAKE_SUDO = r"""#!/bin/sh
if [ "$1" = -n ]; then
  shift 2
  [ -n "$FAKE_SUDO_NOPASSWD" ] || { echo "sudo: a password is required" >&2; exit 1; }
  exec "$@"
fi
prompt=$3; shift 4; tries=0
while [ $tries -lt 3 ]; do
  printf '%s' "$prompt" >&2
  IFS= read -r pw || { echo "sudo: no password was provided" >&2; exit 1; }
  [ "$pw" = "$FAKE_SUDO_PASSWORD" ] && exec "$@"
  echo "Sorry, try again." >&2; tries=$((tries+1))
done
echo "sudo: 3 incorrect password attempts" >&2; exit 1
"""


def with_fake_sudo(tmp_path, monkeypatch, **env) -> "SshServer":
    """A server whose commands find FAKE_SUDO first in their PATH; the machine's own
    known_hosts and run lock kept out of the test (both under `tmp_path`)."""
    from tasks import shell, ssh
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sudo").write_text(FAKE_SUDO)
    (bin_dir / "sudo").chmod(0o755)
    monkeypatch.setattr(ssh, "DEFAULT_KNOWN_HOSTS", (str(tmp_path / "user_known_hosts"),))
    monkeypatch.setattr(shell, "RUN_LOCK", str(tmp_path / "run.lock"))
    return SshServer(env={"PATH": f"{bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin", **env})


class _Interface(paramiko.ServerInterface):
    def __init__(self, server: "SshServer"):
        self.server = server

    def get_allowed_auths(self, username):
        return "password"

    def check_auth_password(self, username, password):
        self.server.users.append(username)
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel, command):
        self.server.commands.append(command.decode())
        time.sleep(self.server.exec_delay)      # a host slow (or never) to answer the request
        threading.Thread(target=self.server.execute, args=(channel, command.decode()),
                         daemon=True).start()
        return True


class SshServer:
    def __init__(self, env: dict | None = None):
        self.key = paramiko.ECDSAKey.generate()
        self.env = dict(os.environ, **(env or {}))
        self.commands: list[str] = []
        self.users: list[str] = []
        self.exec_delay = 0.0
        self.processes: list[subprocess.Popen] = []
        self.transports: list[paramiko.Transport] = []
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def known_hosts_line(self) -> str:
        return f"[127.0.0.1]:{self.port} {self.key.get_name()} {self.key.get_base64()}\n"

    def _serve(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            t = paramiko.Transport(sock)
            t.add_server_key(self.key)
            self.transports.append(t)
            try:
                t.start_server(server=_Interface(self))
            except (paramiko.SSHException, EOFError, OSError):
                continue

    def execute(self, channel, command: str) -> None:
        # After paramiko has answered the exec request.
        proc = subprocess.Popen(["sh", "-c", command], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=self.env,
                                start_new_session=True)
        self.processes.append(proc)

        def stdin() -> None:
            try:
                while True:
                    data = channel.recv(65536)
                    if not data:
                        break
                    proc.stdin.write(data)
                    proc.stdin.flush()
            except (OSError, EOFError):
                pass
            try:
                proc.stdin.close()
            except OSError:
                pass

        def pump(stream, send) -> None:
            try:
                while data := os.read(stream.fileno(), 65536):
                    send(data)
            except (OSError, EOFError):
                pass
            stream.close()

        threading.Thread(target=stdin, daemon=True).start()
        err = threading.Thread(target=pump, args=(proc.stderr, channel.sendall_stderr), daemon=True)
        err.start()
        pump(proc.stdout, channel.sendall)
        err.join()
        status = proc.wait()
        try:
            channel.send_exit_status(status if status >= 0 else 128 - status)
            channel.shutdown_write()
            channel.close()
        except (OSError, EOFError):
            pass

    def close(self) -> None:
        # shutdown wakes the thread blocked in accept(); close alone would leave the socket
        # listening until that accept returns, answering a later test's connection to its port.
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        for t in self.transports:
            t.close()
        for p in self.processes:
            _kill_session(p.pid)
            p.wait()


def _kill_session(sid: int) -> None:
    """Every process of the command's session: its shell, and what the shell started in
    process groups of their own (`timeout` makes one)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:
            try:
                os.kill(int(entry), signal.SIGKILL)
            except ProcessLookupError:
                pass
