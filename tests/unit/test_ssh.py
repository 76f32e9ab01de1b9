"""tasks.ssh against a real SSH server on loopback (paramiko's server side): known, unknown,
changed and accepted-new host keys, decided before any command runs."""

from __future__ import annotations

import socket
import threading

import paramiko
import pytest
from fabric import Config

from tasks import ssh


class _Server(paramiko.ServerInterface):
    def __init__(self, commands):
        self.commands = commands

    def get_allowed_auths(self, username):
        return "password"

    def check_auth_password(self, username, password):
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel, command):
        self.commands.append(command.decode())

        def answer():      # after paramiko has acknowledged the request
            channel.sendall(b"ran\n")
            channel.send_exit_status(0)
            channel.close()

        threading.Timer(0.05, answer).start()
        return True


@pytest.fixture
def server():
    """An SSH server with a fresh ECDSA host key; records every command it is asked to run."""
    key = paramiko.ECDSAKey.generate()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    commands: list[str] = []
    transports = []

    def serve():
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            t = paramiko.Transport(sock)
            t.add_server_key(key)
            transports.append(t)
            try:
                t.start_server(server=_Server(commands))
            except (paramiko.SSHException, EOFError, OSError):
                continue

    threading.Thread(target=serve, daemon=True).start()
    yield {"port": listener.getsockname()[1], "key": key, "commands": commands}
    listener.shutdown(socket.SHUT_RDWR)     # wakes the accept (close alone leaves it listening)
    listener.close()
    for t in transports:
        t.close()


def _conn(server, tmp_path, policy="strict", known=None):
    known_file = tmp_path / "known_hosts"
    if known is not None:
        known_file.write_text(known)
    config = Config(overrides={"connect_kwargs": {"password": "x", "look_for_keys": False,
                                                  "allow_agent": False},
                               "load_ssh_configs": False})
    return ssh.connect("127.0.0.1", server["port"], "root", config,
                       known_hosts=str(known_file), policy=policy), known_file


def _line(server, key=None):
    key = key or server["key"]
    return f"[127.0.0.1]:{server['port']} {key.get_name()} {key.get_base64()}\n"


@pytest.fixture(autouse=True)
def no_user_known_hosts(monkeypatch, tmp_path):
    """Keep the machine's own ~/.ssh/known_hosts out of these tests."""
    monkeypatch.setattr(ssh, "DEFAULT_KNOWN_HOSTS", (str(tmp_path / "user_known_hosts"),))


def test_known_key_connects_and_runs(server, tmp_path):
    conn, _ = _conn(server, tmp_path, known=_line(server))
    ssh.open_verified(conn)
    assert conn.run("echo hi", hide=True, in_stream=False).stdout == "ran\n"
    assert server["commands"] == ["echo hi"]
    conn.close()


def test_unknown_key_is_refused_with_how_to_accept_it(server, tmp_path):
    conn, known = _conn(server, tmp_path, known="")
    with pytest.raises(ssh.SshError) as exc:
        ssh.open_verified(conn)
    text = str(exc.value)
    assert f"unknown host key for [127.0.0.1]:{server['port']}" in text
    assert ssh.fingerprint(server["key"]) in text
    assert f"ssh-keyscan -t {server['key'].get_name()} -p {server['port']} 127.0.0.1" in text
    assert "ssh_host_key_policy = accept-new" in text
    assert known.read_text() == ""          # nothing recorded
    assert server["commands"] == []


def test_changed_key_is_refused_naming_both_fingerprints_even_with_accept_new(server, tmp_path):
    # The same key type as the server's, so the mismatch is a changed key, not a new type.
    other = paramiko.ECDSAKey.generate()
    conn, known = _conn(server, tmp_path, policy="accept-new", known=_line(server, other))
    with pytest.raises(ssh.SshError) as exc:
        ssh.open_verified(conn)
    text = str(exc.value)
    assert "HOST KEY CHANGED" in text and f"[127.0.0.1]:{server['port']}" in text
    assert ssh.fingerprint(other) in text and ssh.fingerprint(server["key"]) in text
    assert known.read_text() == _line(server, other)   # the old key is not replaced
    assert server["commands"] == []


def test_accept_new_records_the_key_once_and_then_it_is_known(server, tmp_path):
    conn, known = _conn(server, tmp_path, policy="accept-new")
    assert not known.exists()
    ssh.open_verified(conn)
    conn.run("true", hide=True, in_stream=False)
    conn.close()
    assert known.read_text() == _line(server)
    assert oct(known.stat().st_mode & 0o777) == "0o600"
    again, _ = _conn(server, tmp_path, policy="strict")   # strict now: the key is known
    ssh.open_verified(again)
    again.close()
    assert known.read_text() == _line(server)


def test_unreachable_host_is_one_line(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conn, _ = _conn({"port": port}, tmp_path, known="")
    with pytest.raises(ssh.SshError, match=f"cannot reach 127.0.0.1:{port}"):
        ssh.open_verified(conn)


def test_unknown_policy_is_refused():
    with pytest.raises(ssh.SshError, match="not one of strict, accept-new"):
        ssh.connect("127.0.0.1", 22, "root", Config(), policy="yes")


def test_a_host_known_by_another_key_type_is_refused_even_with_accept_new(server, tmp_path):
    """The host offers an ECDSA key; known_hosts knows it by an ed25519 key only: a new type
    for a known host is treated as a changed key (stricter than OpenSSH's accept-new, which
    would record it: a MITM could show the one type it has), and nothing is recorded."""
    ed25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICnk1LtPQAXdOOFlfmZ6RGQai4HBl6aDG/hM9Y/sTjCr"
    known = f"[127.0.0.1]:{server['port']} {ed25519}\n"
    conn, known_file = _conn(server, tmp_path, policy="accept-new", known=known)
    with pytest.raises(ssh.SshError) as exc:
        ssh.open_verified(conn)
    text = str(exc.value)
    assert text.startswith(f"HOST KEY CHANGED for [127.0.0.1]:{server['port']}: known ssh-ed25519 "
                           "SHA256:")
    assert f"offered {server['key'].get_name()} {ssh.fingerprint(server['key'])}" in text
    assert known_file.read_text() == known, "nothing recorded"
    assert server["commands"] == []
