"""tasks.shell, run for real: the generated scripts go through this machine's `sh` on temp files.

What a unit test can check best about shell is that it runs: quoting, exit codes, trailing
newlines, atomic renames. Only local files under pytest's tmp_path are touched (these tests run
as root in CI, so `chown root:root` works; they are skipped otherwise).
"""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from tasks import facts, shell

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="write_file chowns to root")


def sh(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=30)


# --- gather + parse_gather: one round trip ------------------------------------------------

ODD_TEXT = "tab\there 'single' \"double\" $HOME `x` \\ back\r\nünïcødé €\n"


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "plain").write_text("a\nb\n")
    (tmp_path / "no-newline").write_text("zk://192.0.2.1:2181/mesos")
    (tmp_path / "blank-tail").write_text("x\n\n\n")
    (tmp_path / "empty").write_text("")
    (tmp_path / "odd").write_text(ODD_TEXT)
    (tmp_path / "with space 'q'").write_text("spaced\n")
    for p in tmp_path.iterdir():
        p.chmod(0o644)
    (tmp_path / "private").write_text("secret\n")
    (tmp_path / "private").chmod(0o600)
    return tmp_path


def owner_group(path) -> str:
    import grp
    import pwd
    st = os.stat(path)
    return f"{pwd.getpwuid(st.st_uid).pw_name} {grp.getgrgid(st.st_gid).gr_name}"


def test_gather_round_trip(tree):
    og = owner_group(tree / "plain")
    probes = {
        "plain": shell.read_file(str(tree / "plain")),
        "no-newline": shell.read_file(str(tree / "no-newline")),
        "blank_tail": shell.read_file(str(tree / "blank-tail")),
        "empty": shell.read_file(str(tree / "empty")),
        "odd": shell.read_file(str(tree / "odd")),
        "spaced": shell.read_file(str(tree / "with space 'q'")),
        "private": shell.read_file(str(tree / "private")),
        "missing": shell.read_file(str(tree / "nope")),
        "exists": shell.exists(str(tree / "plain")),
        "absent": shell.exists(str(tree / "nope")),
        "exit7": "echo partial; exit 7",
        "stderr_dropped": "echo to-stderr >&2; printf 'only stdout'",
        "many_lines": "printf 'l1\\nl2\\n\\n'",
        "no_output": "true",
    }
    result = sh(shell.gather(probes))
    assert result.returncode == 0, result.stderr
    got = facts.parse_gather(result.stdout, list(probes))
    assert got == {
        "plain": facts.Probe(0, f"644 {og}\na\nb\n"),
        "no-newline": facts.Probe(0, f"644 {og}\nzk://192.0.2.1:2181/mesos"),
        "blank_tail": facts.Probe(0, f"644 {og}\nx\n\n\n"),
        "empty": facts.Probe(0, f"644 {og}\n"),
        "odd": facts.Probe(0, f"644 {og}\n{ODD_TEXT}"),
        "spaced": facts.Probe(0, f"644 {og}\nspaced\n"),
        "private": facts.Probe(0, f"600 {og}\nsecret\n"),
        "missing": facts.Probe(3, ""),
        "exists": facts.Probe(0, ""),
        "absent": facts.Probe(1, ""),
        "exit7": facts.Probe(7, "partial\n"),
        "stderr_dropped": facts.Probe(0, "only stdout"),
        "many_lines": facts.Probe(0, "l1\nl2\n\n"),
        "no_output": facts.Probe(0, ""),
    }
    # and through the file parser, as the steps read them
    assert facts.file_fact(got["no-newline"]) == facts.FileFact(
        True, "zk://192.0.2.1:2181/mesos", "644", *og.split())
    assert facts.file_fact(got["blank_tail"]).content == "x\n\n\n"
    assert facts.file_fact(got["missing"]) == facts.FileFact(False)


def test_gather_output_survives_a_login_banner(tree):
    probes = {"plain": shell.read_file(str(tree / "plain"))}
    out = "Welcome to Ubuntu 14.04 LTS\n@@probe looks like one but is not\n" + sh(shell.gather(probes)).stdout
    assert facts.parse_gather(out, ["plain"])["plain"].out.endswith("a\nb\n")


def test_gather_a_probe_cannot_end_the_script():
    result = sh(shell.gather({"first": "exit 5", "second": "echo still here"}))
    got = facts.parse_gather(result.stdout, ["first", "second"])
    assert got == {"first": facts.Probe(5, ""), "second": facts.Probe(0, "still here\n")}


def test_gather_missing_probe_is_an_error():
    out = sh(shell.gather({"a": "true"})).stdout
    with pytest.raises(ValueError, match="host did not report facts: b"):
        facts.parse_gather(out, ["a", "b"])


@pytest.mark.parametrize("name", ["a b", "a;b", "$(x)", "a'b", ""])
def test_gather_refuses_bad_probe_names(name):
    with pytest.raises(ValueError):
        shell.gather({name: "true"})


def test_read_file_of_a_directory_is_a_failure_not_content(tmp_path):
    out = sh(shell.gather({"d": shell.read_file(str(tmp_path))})).stdout
    probe = facts.parse_gather(out, ["d"])["d"]
    assert probe.rc not in (0, 3)
    with pytest.raises(ValueError, match="could not read file"):
        facts.file_fact(probe)


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
    assert sh(shell.exists(shell.restart_marker("mesos-master"))).returncode == 0
    assert sh(shell.clear_restart("mesos-master")).returncode == 0
    assert sh(shell.exists(shell.restart_marker("mesos-master"))).returncode == 1
    assert sh(shell.clear_restart("mesos-master")).returncode == 0, "clearing twice is fine"


def test_remove_file(tmp_path):
    link = tmp_path / "latest"
    link.symlink_to(tmp_path / "nowhere")
    assert sh(shell.remove_file(str(link))).returncode == 0
    assert not os.path.lexists(link)
    assert sh(shell.remove_file(str(link))).returncode == 0


# --- the exact text of the builders the step cases do not show ------------------------------

def test_init_system_detection_runs_here():
    result = sh(shell.init_system())
    assert result.returncode == 0
    assert result.stdout.strip() in ("systemd", "upstart", "sysv")


@pytest.mark.parametrize("init, expected", [
    ("systemd", "systemctl is-active --quiet zookeeper && "
                "{ [ ! -x /etc/init.d/zookeeper ] || /etc/init.d/zookeeper status >/dev/null; }"),
    ("upstart", "status zookeeper 2>/dev/null | grep -q start/running"),
    ("sysv", "service zookeeper status >/dev/null"),
])
def test_service_running(init, expected):
    assert shell.service_running(init, "zookeeper") == expected


@pytest.mark.parametrize("init, expected", [
    ("systemd", "systemctl is-enabled --quiet mesos-slave"),
    ("upstart", "test -e /etc/init/mesos-slave.conf && ! grep -qsx manual /etc/init/mesos-slave.override"),
    ("sysv", "ls /etc/rc2.d/S*mesos-slave >/dev/null 2>&1"),
])
def test_service_enabled(init, expected):
    assert shell.service_enabled(init, "mesos-slave") == expected


@pytest.mark.parametrize("init, restart, enable, disable", [
    ("systemd", "systemctl restart marathon", "systemctl enable --quiet marathon",
     "systemctl disable --quiet marathon && systemctl stop marathon"),
    ("sysv", "service marathon restart", "update-rc.d marathon defaults",
     "service marathon stop; update-rc.d marathon disable"),
])
def test_service_changes(init, restart, enable, disable):
    assert shell.service_restart(init, "marathon") == restart
    assert shell.service_enable(init, "marathon") == enable
    assert shell.service_disable_now(init, "marathon") == disable


def test_upstart_enabled_probe_and_enable_agree(tmp_path):
    """The tutorial's `echo manual > X.override` disables; removing it (service_enable) enables."""
    conf, override = tmp_path / "mesos-slave.conf", tmp_path / "mesos-slave.override"
    conf.write_text("")
    probe = shell.service_enabled("upstart", "mesos-slave").replace("/etc/init/", f"{tmp_path}/")
    assert sh(probe).returncode == 0
    override.write_text("manual\n")
    assert sh(probe).returncode == 1
    override.write_text("# manual is only a comment here\n")
    assert sh(probe).returncode == 0


def test_package_queries():
    assert shell.package_status(["mesos=1.4.1-2.0.1", "marathon"]) == \
        "dpkg-query -W -f '${Package} ${Status} ${Version}\\n' mesos marathon"
    assert shell.package_candidate("mesos") == (
        "dpkg-query -W -f '${Status}' mesos 2>/dev/null | grep -q ' installed$' || "
        "apt-cache policy mesos | sed -n 's/^ *Candidate: *//p'")


def test_candidate_sed_extracts_the_version():
    policy = ("mesos:\n  Installed: (none)\n  Candidate: 1.4.1-2.0.1\n  Version table:\n"
              "     1.4.1-2.0.1 0\n        500 http://repos.mesosphere.io/ubuntu/ trusty/main amd64\n")
    script = shell.package_candidate("mesos").replace("apt-cache policy mesos", f"printf '%s' {shell.q(policy)}")
    assert sh(script).stdout == "1.4.1-2.0.1\n"


def test_apt_install_keeps_conffiles_and_quotes():
    assert shell.apt_install(["mesos=1.4.1-2.0.1"], recommends=False) == (
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o Dpkg::Options::=--force-confold"
        " --no-install-recommends mesos=1.4.1-2.0.1")


def test_fingerprint_sed_matches_gpg_colon_output():
    colons = ("tru::1:1700000000:0:3:1:5\npub:-:4096:1:DF7D54CBE56151BF:1403213574:::-:::scESC::::::23::0:\n"
              "fpr:::::::::81026D0004C44CF7EF55ADF8DF7D54CBE56151BF:\n"
              "uid:-::::1403213574::0F4A...::Mesosphere Archive Automatic Signing Key <support@mesosphere.io>::::::::::0:\n")
    # As on a release without signed-by: the apt version check fails, apt-key is asked.
    script = shell.apt_key_fingerprints().replace(shell.apt_supports_signed_by(), "false").replace(
        "apt-key adv --with-colons --fingerprint", f"printf '%s' {shell.q(colons)}")
    out = sh(script).stdout
    assert out == "81026D0004C44CF7EF55ADF8DF7D54CBE56151BF\n"
    assert facts.key_present(facts.fingerprints(facts.Probe(0, out)), "E56151BF")


def test_apt_key_is_not_asked_where_apt_has_signed_by():
    asked = shell.apt_key_fingerprints().replace(
        "apt-key adv --with-colons --fingerprint", "printf 'fpr:::::::::ABC:\\n'")
    assert sh(asked.replace(shell.apt_supports_signed_by(), "false")).stdout == "ABC\n"
    result = sh(asked.replace(shell.apt_supports_signed_by(), "true"))
    assert result.returncode == 0 and result.stdout == ""


def test_keyring_probe_on_a_missing_keyring_fails_quietly(tmp_path):
    result = sh(shell.keyring_fingerprints(str(tmp_path / "none.gpg")))
    assert result.returncode != 0 and result.stdout == ""


def test_wait_zookeeper_serving_against_a_local_fake():
    """The srvr poll, against a one-shot server on 127.0.0.1 that answers like a follower."""
    import socket
    import threading
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(5)
    port = srv.getsockname()[1]

    def serve():
        for _ in range(3):
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                conn.recv(64)
                conn.sendall(b"Zookeeper version: 3.4.5\nLatency min/avg/max: 0/0/0\nMode: follower\n")
    threading.Thread(target=serve, daemon=True).start()
    try:
        if subprocess.run(["sh", "-c", "command -v nc"], capture_output=True).returncode:
            pytest.skip("nc is not installed")
        ok = sh(shell.wait_zookeeper_serving(port, ("leader", "follower"), seconds=3))
        assert ok.returncode == 0, ok.stderr
        bad = sh(shell.wait_zookeeper_serving(port, ("standalone",), seconds=1))
        assert bad.returncode == 1
        assert f"ZooKeeper on port {port} did not reach quorum within 1 s" in bad.stderr
    finally:
        srv.close()
