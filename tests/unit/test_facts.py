"""tasks.facts: every fact's command run for real by this machine's `sh`, through one gather,
and parsed; the parsers on recorded outputs of what this machine cannot show (upstart, apt's
legacy keyring); the snapshot's bookkeeping."""

from __future__ import annotations

import base64
import grp
import os
import pwd
import shutil
import subprocess

import pytest

from tests.unit.gpg_keys import new_key
from tasks import facts, init, shell
from tasks.facts import FactError, File, Service, Snapshot, UnknownFact

ODD_TEXT = "tab\there 'single' \"double\" $HOME `x` \\ back\r\nünïcødé €\n"


def sh(script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60)


def gather(names: list[str]) -> dict[str, object]:
    result = sh(facts.gather_script(names))
    assert result.returncode == 0, result.stderr
    return facts.parse_gather(result.stdout, names)


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
    (tmp_path / "sub dir").mkdir()
    return tmp_path


def test_file_and_dir_facts_in_one_gather(tree):
    st = os.stat(tree / "plain")
    owner, group = pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name
    f = lambda content, mode="644": File(content, mode, owner, group)  # noqa: E731
    names = {
        "plain": "a\nb\n", "no-newline": "zk://192.0.2.1:2181/mesos", "blank-tail": "x\n\n\n",
        "empty": "", "odd": ODD_TEXT, "with space 'q'": "spaced\n",
    }
    asked = [facts.file(str(tree / n)) for n in names] + [
        facts.file(str(tree / "private")), facts.file(str(tree / "nope")),
        facts.directory(str(tree / "sub dir")), facts.directory(str(tree / "nope")),
        facts.directory(str(tree / "plain"))]
    got = gather(asked)
    assert got == {
        **{facts.file(str(tree / n)): f(content) for n, content in names.items()},
        facts.file(str(tree / "private")): f("secret\n", "600"),
        facts.file(str(tree / "nope")): None,
        facts.directory(str(tree / "sub dir")): True,
        facts.directory(str(tree / "nope")): False,
        facts.directory(str(tree / "plain")): False,
    }


def test_a_file_that_cannot_be_read_is_an_error_when_read(tmp_path):
    got = gather([facts.file(str(tmp_path))])   # a directory: `cat` fails
    value = got[facts.file(str(tmp_path))]
    assert isinstance(value, FactError) and "could not read the file" in str(value)
    with pytest.raises(FactError, match=f"file:{tmp_path}"):
        Snapshot(got).read(facts.file(str(tmp_path)))


def test_init_restart_marks_and_packages_on_this_machine(tmp_path, monkeypatch):
    marks = tmp_path / "marks"
    monkeypatch.setattr(facts, "MARKER_DIR", str(marks))
    assert gather([facts.RESTART_MARKS])[facts.RESTART_MARKS] == frozenset()
    marks.mkdir()
    (marks / "zookeeper").touch()
    (marks / "mesos-slave.agent-info").touch()
    got = gather([facts.INIT, facts.RESTART_MARKS, facts.package("dpkg"),
                  facts.package("no-such-package-here"), facts.candidate("dpkg")])
    assert got[facts.INIT] in ("systemd", "upstart", "sysv")
    assert got[facts.RESTART_MARKS] == {"zookeeper", "mesos-slave.agent-info"}
    dpkg = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "dpkg"],
                          capture_output=True, text=True).stdout
    assert got[facts.package("dpkg")] == dpkg
    assert got[facts.package("no-such-package-here")] is None
    assert got[facts.candidate("dpkg")] == "", "installed: apt-cache is not asked"


def test_service_fact_of_a_service_that_is_not_there():
    """Whatever init system this machine runs, the arm for it is picked on the machine and
    says "not installed" (exit 3) for a service no init system knows."""
    got = gather([facts.service("no-such-service-here")])
    assert got == {facts.service("no-such-service-here"): None}


def test_keyring_fingerprints_with_real_gpg(tmp_path):
    if not shutil.which("gpg"):
        pytest.skip("gpg is not installed")
    fpr, armored = new_key(tmp_path, "test")
    keyring = tmp_path / "k.gpg"
    keyring.write_bytes(subprocess.run(["gpg", "--dearmor"], input=armored, capture_output=True,
                                       check=True).stdout)
    got = gather([facts.keyring(str(keyring)), facts.keyring(str(tmp_path / "none.gpg"))])
    assert got == {facts.keyring(str(keyring)): {fpr},
                   facts.keyring(str(tmp_path / "none.gpg")): frozenset()}


def test_apt_key_is_asked_only_where_apt_has_no_signed_by():
    command = facts.command(facts.APT_KEY)
    colons = ("pub:-:4096:1:DF7D54CBE56151BF:1403213574:::-:::scESC::::::23::0:\n"
              "fpr:::::::::81026D0004C44CF7EF55ADF8DF7D54CBE56151BF:\n")
    apt_key = command.replace("apt-key adv --with-colons --fingerprint", f"printf '%s' {shell.q(colons)}")
    signed_by = facts.command(facts.APT_SIGNED_BY)
    old_apt = sh(apt_key.replace(signed_by, "false"))
    assert facts.parse(facts.APT_KEY, old_apt.returncode, old_apt.stdout) == \
        {"81026D0004C44CF7EF55ADF8DF7D54CBE56151BF"}
    new_apt = sh(apt_key.replace(signed_by, "true"))
    assert new_apt.returncode == 0 and new_apt.stdout == ""


def test_candidate_of_a_package_not_installed_is_apt_caches(monkeypatch):
    policy = ("mesos:\n  Installed: (none)\n  Candidate: 1.4.1-2.0.1\n  Version table:\n"
              "     1.4.1-2.0.1 0\n        500 http://repos.mesosphere.io/ubuntu/ trusty/main amd64\n")
    name = facts.candidate("no-such-package-here")
    script = facts.gather_script([name]).replace(
        "apt-cache policy no-such-package-here", f"printf '%s' {shell.q(policy)}")
    out = sh(script)
    assert facts.parse_gather(out.stdout, [name]) == {name: "1.4.1-2.0.1"}
    assert facts.parse("candidate:mesos", 0, "(none)\n") == ""


# --- systemd's unit table, read by the shell -------------------------------------------------

# What `systemctl show -p Names -p UnitFileState -p SubState -- ...` prints (systemd 252): a
# block per unit, in whatever order systemd keeps the properties; an alias among the Names.
UNITS = """SubState=running
Names=zookeeper.service
UnitFileState=generated

Names=mesos-master.service
SubState=running
UnitFileState=enabled

UnitFileState=disabled
SubState=dead
Names=mesos-slave.service

Names=marathon.service marathon-alias.service
UnitFileState=static
SubState=exited"""


def unit_state(tmp_path, service: str, table: str = UNITS, enabled_by_systemctl=True):
    """The systemd arm's answer (`enabled`, `running` lines) for `service`, from `table`,
    with a `systemctl` that says whether is-enabled was asked (and answers it)."""
    (tmp_path / "units").write_text(table)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "systemctl"
    fake.write_text(f"#!/bin/sh\necho \"asked $*\" >&2\nexit {0 if enabled_by_systemctl else 1}\n")
    fake.chmod(0o755)
    script = (f"t={shell.q(str(tmp_path))}; PATH={shell.q(str(bin_dir))}:$PATH\n"
              f"{facts.UNITS.reader}\n{init.systemd.state(service)}")
    out = sh(script)
    assert out.returncode == 0, out.stderr
    return out.stdout.split(), out.stderr.strip()


def test_the_unit_table_answers_each_service(tmp_path):
    # generated (a SysV script): systemctl is-enabled reads its rc links.
    assert unit_state(tmp_path, "zookeeper") == (
        ["enabled", "running"], "asked is-enabled --quiet zookeeper")
    assert unit_state(tmp_path, "zookeeper", enabled_by_systemctl=False) == (
        ["running"], "asked is-enabled --quiet zookeeper")
    assert unit_state(tmp_path, "mesos-master") == (["enabled", "running"], "")
    assert unit_state(tmp_path, "mesos-slave") == ([], "")
    # static counts as enabled, as `is-enabled` says; "exited" is not running.
    assert unit_state(tmp_path, "marathon") == (["enabled"], "")
    assert unit_state(tmp_path, "marathon-alias") == (["enabled"], "")


def test_a_sysv_script_under_systemd_229_is_asked_whether_it_is_enabled(tmp_path):
    """systemd 229 says `bad` for a unit generated from /etc/init.d; its is-enabled still
    reads the script's rc links."""
    table = "Names=zookeeper.service\nUnitFileState=bad\nSubState=running\n"
    assert unit_state(tmp_path, "zookeeper", table) == (
        ["enabled", "running"], "asked is-enabled --quiet zookeeper")
    assert unit_state(tmp_path, "zookeeper", table, enabled_by_systemctl=False) == (
        ["running"], "asked is-enabled --quiet zookeeper")


def test_a_unit_missing_from_the_table_is_asked_and_not_running(tmp_path):
    assert unit_state(tmp_path, "chronos") == (["enabled"], "asked is-enabled --quiet chronos")
    assert unit_state(tmp_path, "chronos", table="") == (
        ["enabled"], "asked is-enabled --quiet chronos")
    # A table without its last newline still ends its last block.
    assert unit_state(tmp_path, "marathon", table=UNITS.rstrip("\n")) == (["enabled"], "")


@pytest.mark.parametrize("out, value", [
    ("install ok installed 1.4.1-2.0.1", "1.4.1-2.0.1"),
    ("deinstall ok config-files 1.4.8-1.0.660.ubuntu1404", None),
    ("install ok not-installed ", None),
])
def test_package_status_lines(out, value):
    assert facts.parse("package:mesos", 0, out) == value


def test_upstart_and_lsb_answers():
    assert facts.parse(facts.INIT, 0, "upstart\n") == "upstart"
    assert isinstance(facts.parse(facts.INIT, 0, "openrc\n"), FactError)
    assert facts.parse(facts.LSB_RELEASE, 0, "Ubuntu\ntrusty\n") == ("Ubuntu", "trusty")
    assert facts.parse(facts.LSB_RELEASE, 127, "") is None
    assert facts.parse("service:zookeeper", 0, "enabled\nrunning\n") == Service(True, True)
    assert facts.parse("service:zookeeper", 0, "running\n") == Service(False, True)
    assert facts.parse("service:zookeeper", 3, "") is None


# --- the gather's wire format --------------------------------------------------------------

def test_gather_survives_a_login_banner(tree):
    names = [facts.file(str(tree / "plain")), facts.directory(str(tree / "nope"))]
    out = "Welcome to Ubuntu 14.04 LTS\n@@facts looks like the facts' line but is not\n" + \
        sh(facts.gather_script(names)).stdout
    assert facts.parse_gather(out, names)[names[0]].content == "a\nb\n"


def test_a_command_that_exits_ends_only_itself(tree):
    names = [facts.file(str(tree / "nope")), facts.file(str(tree / "plain"))]
    got = gather(names)
    assert got[names[0]] is None and got[names[1]].content == "a\nb\n"


def test_gather_a_fact_that_did_not_report_is_an_error(tree):
    with pytest.raises(FactError, match="did not report: restart-marks"):
        facts.parse_gather("", [facts.RESTART_MARKS])
    names = [facts.file(str(tree / "plain")), facts.RESTART_MARKS]
    out = sh(facts.gather_script(names[:1])).stdout
    with pytest.raises(FactError, match="did not report: restart-marks"):
        facts.parse_gather(out, names)
    with pytest.raises(FactError, match="did not report: file:"):
        facts.parse_gather(out[:40] + "\n", names[:1])


def test_the_temporary_directories_are_removed(tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path))
    names = [facts.INIT, facts.package("dpkg"), facts.service("no-such-service-here")]
    result = subprocess.run(["sh", "-c", facts.gather_script(names)], env=env,
                            capture_output=True, text=True)
    assert facts.parse_gather(result.stdout, names)[facts.INIT] in ("systemd", "upstart", "sysv")
    assert list(tmp_path.iterdir()) == []


# --- the snapshot --------------------------------------------------------------------------

def test_snapshot_applies_sets_and_forgets_kinds():
    snap = Snapshot({facts.file("/a"): None, facts.package("mesos"): None, facts.INIT: "systemd"})
    snap.apply({facts.file("/a"): File("x\n")}, (), "write /a")
    assert snap.read(facts.file("/a")) == File("x\n")
    snap.apply({}, facts.CHANGED_BY_PACKAGES, "install mesos")
    with pytest.raises(UnknownFact, match="install mesos"):
        snap.read(facts.package("mesos"))
    assert snap.read(facts.INIT) == "systemd", "an install does not change the init system"
    assert snap.missing([facts.INIT, facts.file("/a"), facts.file("/b")]) == \
        [facts.file("/a"), facts.file("/b")]
    snap.update({facts.file("/a"): None})
    assert snap.read(facts.file("/a")) is None


def test_a_step_reads_only_the_facts_it_named():
    view = facts.Facts(Snapshot({facts.INIT: "systemd", facts.RESTART_MARKS: frozenset()}),
                       [facts.INIT])
    assert view[facts.INIT] == "systemd"
    with pytest.raises(KeyError, match="not named"):
        view[facts.RESTART_MARKS]
