"""tasks.shell, run for real: the generated scripts go through this machine's `sh` on temp files.

What a unit test can check best about shell is that it runs: quoting, exit codes, trailing
newlines, atomic renames. Only local files under pytest's tmp_path are touched (these tests run
as root in CI, so `chown root:root` works; they are skipped otherwise).
"""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
import time

import pytest

from tasks import init, shell
from tests.unit import standins_local
from tests.unit.gpg_keys import new_key
from tasks.init import upstart

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="write_file chowns to root")


def sh(script: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30,
                          env=env)


ODD_TEXT = "tab\there 'single' \"double\" $HOME `x` \\ back\r\nünïcødé €\n"


# --- write_file: atomic, exact, marked ------------------------------------------------------

@pytest.fixture
def markers(tmp_path, monkeypatch):
    d = tmp_path / "markers"
    monkeypatch.setattr(shell, "MARKER_DIR", str(d))
    return d


def leftovers(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("."))


@needs_root
def test_write_file_creates_directory_content_mode_and_marker(tmp_path, markers):
    target = tmp_path / "etc dir" / "zoo'keeper" / "zoo.cfg"
    content = "server.1=192.0.2.1:2888:3888\n" + ODD_TEXT + "no newline at end"
    result = sh(shell.write_file(str(target), content, mode="640", restart=("zookeeper", "marathon")))
    assert result.returncode == 0, result.stderr
    assert target.read_bytes() == content.encode()
    st = target.stat()
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert (st.st_uid, st.st_gid) == (0, 0)
    assert leftovers(target.parent) == []
    assert sorted(p.name for p in markers.iterdir()) == ["marathon", "zookeeper"]


@needs_root
def test_write_file_replaces_atomically(tmp_path, markers):
    target = tmp_path / "zk"
    target.write_text("zk://localhost:2181/mesos\n")
    target.chmod(0o600)
    before = target.stat().st_ino
    result = sh(shell.write_file(str(target), "zk://192.0.2.1:2181/mesos\n"))
    assert result.returncode == 0, result.stderr
    assert target.read_text() == "zk://192.0.2.1:2181/mesos\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert target.stat().st_ino != before, "a rename, not an in-place rewrite"
    assert leftovers(tmp_path) == []
    assert not markers.exists(), "no restart asked, no marker"


@needs_root
def test_write_file_empty_content(tmp_path, markers):
    target = tmp_path / "empty"
    assert sh(shell.write_file(str(target), "")).returncode == 0
    assert target.read_bytes() == b""


@needs_root
def test_write_file_onto_a_directory_fails_and_leaves_nothing(tmp_path, markers):
    target = tmp_path / "work_dir"
    target.mkdir()
    result = sh(shell.write_file(str(target), "x\n", restart=("mesos-slave",)))
    assert result.returncode != 0
    assert list(target.iterdir()) == [], "the temporary file must not land inside the directory"
    assert leftovers(tmp_path) == []
    # markers are set first: one restart too many beats a change that is never restarted
    assert (markers / "mesos-slave").exists()


@needs_root
def test_write_file_with_a_bad_owner_fails_and_leaves_nothing(tmp_path, markers):
    target = tmp_path / "f"
    result = sh(shell.write_file(str(target), "x\n", owner="no-such-user-here"))
    assert result.returncode != 0
    assert not target.exists()
    assert leftovers(tmp_path) == []


@needs_root
def test_mark_and_clear_restart(markers):
    assert sh(shell.mark_restart("mesos-master")).returncode == 0
    assert (markers / "mesos-master").exists()
    assert sh(shell.clear_restart("mesos-master")).returncode == 0
    assert not (markers / "mesos-master").exists()
    assert sh(shell.clear_restart("mesos-master")).returncode == 0, "clearing twice is fine"


def test_remove_file(tmp_path):
    link = tmp_path / "latest"
    link.symlink_to(tmp_path / "nowhere")
    assert sh(shell.remove_file(str(link))).returncode == 0
    assert not os.path.lexists(link)
    assert sh(shell.remove_file(str(link))).returncode == 0


# --- what the step cases do not show -------------------------------------------------------

def test_upstart_enabled_probe_and_enable_agree(tmp_path):
    """The tutorial's `echo manual > X.override` disables; removing it (`enable`) enables."""
    conf, override = tmp_path / "mesos-slave.conf", tmp_path / "mesos-slave.override"
    conf.write_text("")
    probe = upstart.enabled("mesos-slave").replace("/etc/init/", f"{tmp_path}/")
    assert sh(probe).returncode == 0
    override.write_text("manual\n")
    assert sh(probe).returncode == 1
    override.write_text("# manual is only a comment here\n")
    assert sh(probe).returncode == 0
    assert sh(upstart.enable("mesos-slave").replace("/etc/init/", f"{tmp_path}/")).returncode == 0
    assert not override.exists()


def test_apt_install_keeps_conffiles_and_quotes():
    assert shell.apt_install(["mesos=1.4.1-2.0.1", "a b"], 60, recommends=False) == \
        shell.waiting_for_dpkg_lock(
            "DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o Dpkg::Options::="
            "--force-confold --no-install-recommends mesos=1.4.1-2.0.1 'a b'", 60)


# What apt 2.6 (Debian 12) prints while unattended-upgrades holds the lock.
LOCKED = ("E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 "
          "(unattended-upgr)\nE: Unable to acquire the dpkg frontend lock "
          "(/var/lib/dpkg/lock-frontend), is another process using it?")


def fake_apt(tmp_path, locked_times: int, other_error: str = "") -> dict:
    """An apt-get that answers LOCKED `locked_times` times, then `other_error` or success."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-get").write_text(
        "#!/bin/sh\n"
        f"n=$(cat {tmp_path}/tries 2>/dev/null || echo 0); echo $((n+1)) > {tmp_path}/tries\n"
        f"if [ $n -lt {locked_times} ]; then printf '%s\\n' {shell.q(LOCKED)} >&2; exit 100; fi\n"
        + (f"echo {shell.q(other_error)} >&2; exit 100\n" if other_error else "echo installed\n"))
    (bin_dir / "apt-get").chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin"}


def test_apt_waits_for_the_dpkg_lock_saying_what_holds_it(tmp_path):
    result = sh(shell.apt_install(["mesos"], 30), env=fake_apt(tmp_path, 1))
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        "@@wait E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process "
        "4242 (unattended-upgr)", "installed"]


def test_apt_gives_up_on_the_dpkg_lock_after_its_limit(tmp_path):
    result = sh(shell.apt_update(1), env=fake_apt(tmp_path, 5))
    assert result.returncode == 100
    assert result.stderr.splitlines()[0] == "gave up after waiting 2 s for the dpkg lock:"
    assert "held by process 4242" in result.stderr
    assert (tmp_path / "tries").read_text() == "2\n"


def test_apt_fails_at_once_on_another_error(tmp_path):
    result = sh(shell.dpkg_repair(30).replace("dpkg --force", "apt-get --force"),
                env=fake_apt(tmp_path, 0, "E: Unable to locate package mesos"))
    assert result.returncode == 100
    assert result.stderr == "E: Unable to locate package mesos\n"
    assert result.stdout == ""


def test_wait_until_succeeds_as_soon_as_the_check_does(tmp_path):
    flag = tmp_path / "ready"
    script = shell.wait_until(f"test -e {shell.q(str(flag))}", 3, "never ready")
    flag.touch()
    assert sh(script).returncode == 0
    flag.unlink()
    failed = sh(script)
    assert failed.returncode == 1 and failed.stderr == "never ready\n"


def test_verify_running_names_the_service_that_died():
    """The check after (re)starts, with sysv's commands (this machine has no init to ask):
    `service X status` fails for a service that does not exist, as for one that died."""
    result = sh(init.verify_running(init.sysv, ("no-such-service-here",), settle=0))
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == \
        "no-such-service-here is not running after its start (log above)"


# --- signing keys: fetched, checked in a throw-away GnuPG home, trusted alone -----------------

def fingerprints_in(path) -> list[str]:
    out = subprocess.run(["gpg", "--batch", "--with-colons", "--show-keys", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return [line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:")]


@pytest.fixture
def key_server(tmp_path):
    """An HTTP server serving tmp_path/www (the mirror's key.asc), on an address of this test
    process's own (nothing else listens there)."""
    import functools
    import http.server
    import threading
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(www))
    handler.log_message = lambda *a: None
    address = standins_local.loopback(9)
    server = http.server.ThreadingHTTPServer((address, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield www, f"http://{address}:{server.server_address[1]}/key.asc"
    server.shutdown()
    server.server_close()


@pytest.fixture
def apt_key(tmp_path):
    """A stand-in apt-key that keeps what `apt-key add FILE` was given."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "apt-key").write_text(f"#!/bin/sh\n[ \"$1\" = add ] && cp \"$2\" {tmp_path}/added\n")
    (bin_dir / "apt-key").chmod(0o755)
    return {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}, tmp_path / "added"


@pytest.mark.skipif(not shutil.which("gpg") or not shutil.which("curl"), reason="needs gpg and curl")
def test_apt_key_adds_only_the_key_with_the_fingerprint(tmp_path, key_server, apt_key):
    www, url = key_server
    env, added = apt_key
    wanted, wanted_key = new_key(tmp_path, "repo")
    other, other_key = new_key(tmp_path, "intruder")
    (www / "key.asc").write_bytes(other_key + wanted_key)     # the URL serves one key too many
    result = sh(shell.apt_key_add(wanted, key_url=url), env=env)
    assert result.returncode == 0, result.stderr
    assert fingerprints_in(added) == [wanted]


@pytest.mark.skipif(not shutil.which("gpg") or not shutil.which("curl"), reason="needs gpg and curl")
def test_apt_key_refuses_a_key_with_another_fingerprint(tmp_path, key_server, apt_key):
    www, url = key_server
    env, added = apt_key
    wanted, _ = new_key(tmp_path, "repo")
    _, other_key = new_key(tmp_path, "intruder")
    (www / "key.asc").write_bytes(other_key)
    result = sh(shell.apt_key_add(wanted, key_url=url), env=env)
    assert result.returncode == 1
    assert result.stderr == f"the fetched key is not {wanted} (its primary fingerprint): " \
                            "nothing was trusted\n"
    assert not added.exists()


@pytest.mark.skipif(not shutil.which("gpg") or not shutil.which("curl"), reason="needs gpg and curl")
def test_the_signed_by_keyring_holds_only_the_checked_key(tmp_path, key_server):
    www, url = key_server
    wanted, wanted_key = new_key(tmp_path, "repo")
    _, other_key = new_key(tmp_path, "intruder")
    (www / "key.asc").write_bytes(wanted_key + other_key)
    keyring = tmp_path / "keyrings" / "mesosphere.gpg"
    result = sh(shell.fetch_key_to_keyring(wanted, str(keyring), key_url=url))
    assert result.returncode == 0, result.stderr
    assert fingerprints_in(keyring) == [wanted]
    assert oct(keyring.stat().st_mode & 0o777) == "0o644"
    (www / "key.asc").write_bytes(other_key)
    keyring.unlink()
    assert sh(shell.fetch_key_to_keyring(wanted, str(keyring), key_url=url)).returncode == 1
    assert not keyring.exists() and not (tmp_path / "keyrings" / ".mesosphere.gpg.new").exists()


def test_wait_for_port_waits_on_the_address_the_daemon_listens_on():
    """ZooKeeper listens on the host's address only (clientPortAddress): the wait must look
    there, and give up (without failing) where nothing listens."""
    address = standins_local.loopback(7)
    with socket.socket() as server:
        server.bind((address, 0))
        server.listen()
        port = server.getsockname()[1]
        started = time.monotonic()
        assert sh(shell.wait_for_port(address, port, 5)).returncode == 0
        assert time.monotonic() - started < 2, "it listens there: no wait"
        started = time.monotonic()
        assert sh(shell.wait_for_port(standins_local.loopback(8), port, 1)).returncode == 0
        assert time.monotonic() - started >= 1, "nothing there: it waited its limit"
