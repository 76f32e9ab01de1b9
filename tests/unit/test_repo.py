"""build_repo: the signed apt repository of stand-in packages (test equipment)."""
import re
import shutil
import subprocess
import sys
import time

import pytest

from testbed.repo import apt_preferences, build_repo
from testbed.standins.localrun import Proc, wait_port


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp("repo")
    info = build_repo(base / "out", gnupghome=base / "gpg")
    return base, info


def deb(out, name, version=None):
    """The .deb of `name` (of its current release unless `version` is given)."""
    version = version or {"mesos": "1.4.1-2.0.1", "mesosphere": "1.4.1-2.0.1",
                          "marathon": "1.4.8-1.0.660.debian90"}.get(name, "*")
    return next((out / "debian/pool/main").glob(f"*/{name}/{name}_{version}_all.deb"))


def dpkg_deb(*args):
    return subprocess.run(["dpkg-deb", *args], capture_output=True, text=True,
                          check=True).stdout


def test_info(built):
    base, info = built
    assert re.fullmatch(r"[0-9A-F]{40}", info.key_fingerprint)
    assert info.key_file == base / "out/key.asc" and info.distro_path == "debian"
    assert info.key_file.read_text().startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")


def test_layout_and_index_list_two_releases_of_each_package_but_chronos(built):
    out, info = built[0] / "out", built[1]
    dist = out / "debian/dists/bookworm"
    for name in ("Release", "InRelease", "Release.gpg", "main/binary-amd64/Packages",
                 "main/binary-amd64/Packages.gz"):
        assert (dist / name).is_file(), name
    packages = (dist / "main/binary-amd64/Packages").read_text()
    assert re.findall(r"^Package: (.*)\n(?:.*\n)*?Version: (.*)$", packages, re.M) == [
        ("chronos", "2.5.1-0.1.20171211074431.debian90"),
        ("marathon", "1.4.8-1.0.660.debian90"), ("marathon", "1.4.9-1.0.0.debian90"),
        ("mesos", "1.4.1-2.0.1"), ("mesos", "1.4.2-2.0.1"),
        ("mesosphere", "1.4.1-2.0.1"), ("mesosphere", "1.4.2-2.0.1")]
    assert info.packages["mesos"] == "1.4.1-2.0.1" and info.newer["mesos"] == "1.4.2-2.0.1"
    release = (dist / "Release").read_text()
    assert "Architectures: amd64" in release and "Components: main" in release


def test_inrelease_verifies_with_gpgv_against_key_asc(built):
    base, info = built
    keyring = base / "keyring.gpg"
    subprocess.run(["gpg", "--batch", "--homedir", str(base / "verify"), "--dearmor",
                    "--output", str(keyring), str(info.key_file)], check=True,
                   capture_output=True)
    for args in (["InRelease"], ["Release.gpg", "Release"]):
        r = subprocess.run(["gpgv", "--keyring", str(keyring), *args],
                           cwd=base / "out/debian/dists/bookworm", capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        assert info.key_fingerprint in r.stderr


def test_mesos_package_files_conffiles_and_depends(built):
    path = deb(built[0] / "out", "mesos")
    info = dpkg_deb("-I", str(path))
    assert "Depends: python3, python3-kazoo" in info
    assert "Recommends: zookeeper, zookeeperd" in info
    files = dpkg_deb("-c", str(path))
    for f in ("./etc/mesos/zk", "./etc/mesos-master/quorum", "./etc/mesos-master/work_dir",
              "./etc/mesos-slave/work_dir", "./etc/default/mesos", "./etc/default/mesos-master",
              "./etc/default/mesos-slave", "./usr/bin/mesos-init-wrapper",
              "./usr/sbin/mesos-master", "./usr/sbin/mesos-slave", "./var/lib/mesos/",
              "./var/log/mesos/", "./lib/systemd/system/mesos-master.service",
              "./lib/systemd/system/mesos-slave.service"):
        assert re.search(rf" {re.escape(f)}$", files, re.M), f
    assert dpkg_deb("-f", str(path), "Architecture").strip() == "all"
    tree = built[0] / "x-mesos"
    subprocess.run(["dpkg-deb", "-R", str(path), str(tree)], check=True)
    assert (tree / "DEBIAN/conffiles").read_text().split() == sorted([
        "/etc/default/mesos", "/etc/default/mesos-master", "/etc/default/mesos-slave",
        "/etc/mesos-master/quorum", "/etc/mesos-master/work_dir", "/etc/mesos-slave/work_dir",
        "/etc/mesos/zk"])
    assert (tree / "etc/mesos/zk").read_text() == "zk://localhost:2181/mesos\n"
    assert (tree / "etc/default/mesos-master").read_text() == \
        "PORT=5050\nZK=`cat /etc/mesos/zk`\n"
    unit = (tree / "lib/systemd/system/mesos-master.service").read_text()
    assert "ExecStart=/usr/bin/mesos-init-wrapper master" in unit and "RestartSec=20" in unit
    postinst = (tree / "DEBIAN/postinst").read_text()
    assert "deb-systemd-helper enable" in postinst
    assert not re.search(r"(systemctl|deb-systemd-invoke)\s.*\bstart\b", postinst)


def test_marathon_chronos_meta(built):
    out = built[0] / "out"
    m = dpkg_deb("-I", str(deb(out, "marathon")))
    assert "Depends: python3, python3-kazoo" in m and "mesos" not in m.split("Depends:")[1]
    assert "./usr/bin/marathon" in dpkg_deb("-c", str(deb(out, "marathon")))
    assert "etc/marathon" not in dpkg_deb("-c", str(deb(out, "marathon")))
    assert "./etc/chronos/conf/http_port" in dpkg_deb("-c", str(deb(out, "chronos")))
    assert "Depends: zookeeper, zookeeperd, mesos, marathon, chronos" in \
        dpkg_deb("-I", str(deb(out, "mesosphere")))


def test_second_call_is_a_fast_no_op_and_marathon_version_switches(built, tmp_path):
    base, info = built
    out = base / "out"
    before = (out / "debian/dists/bookworm/InRelease").stat().st_mtime_ns
    t = time.monotonic()
    again = build_repo(out, gnupghome=base / "gpg")
    assert time.monotonic() - t < 1.0
    assert again.key_fingerprint == info.key_fingerprint
    assert (out / "debian/dists/bookworm/InRelease").stat().st_mtime_ns == before
    other = build_repo(tmp_path / "out16", marathon_version="1.6.322", gnupghome=base / "gpg")
    assert other.key_fingerprint == info.key_fingerprint  # the cached key is reused
    assert sorted(p.name for p in (tmp_path / "out16/debian/pool/main/m/marathon").iterdir()) \
        == ["marathon_1.6.322-2.0.229.debian90_all.deb", "marathon_1.6.352-1.0.0.debian90_all.deb"]


@pytest.mark.skipif(not shutil.which("apt-get"), reason="needs apt-get")
def test_apt_takes_the_newer_release_only_when_asked(built, tmp_path):
    """apt fetches the signed index from a local HTTP server, with signed-by=key.asc, without
    warnings; with the testbed's pins a plain install takes 1.4.1, `mesos=1.4.2-2.0.1` the
    newer one (without the pins apt would take the newer)."""
    base, info = built
    lists = tmp_path / "lists"
    (lists / "partial").mkdir(parents=True)
    (tmp_path / "cache/archives/partial").mkdir(parents=True)
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sources = tmp_path / "sources.list"
    sources.write_text(f"deb [signed-by={info.key_file}] http://127.0.0.1:{port}/debian "
                       "bookworm main\n")
    server = Proc([sys.executable, "-m", "http.server", "-b", "127.0.0.1", "-d",
                   str(base / "out"), str(port)], str(tmp_path / "http.log"))
    try:
        wait_port("127.0.0.1", port)
        opts = [f"-oDir::Etc::SourceList={sources}", "-oDir::Etc::SourceParts=/dev/null",
                f"-oDir::State::Lists={lists}", f"-oDir::Cache={tmp_path / 'cache'}",
                "-oAPT::Sandbox::User=root"]
        r = subprocess.run(["apt-get", "update", *opts], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "W:" not in r.stdout + r.stderr and "E:" not in r.stdout + r.stderr
        def policy(*extra):
            return subprocess.run(["apt-cache", *opts, *extra, "policy", "mesos"],
                                  capture_output=True, text=True, check=True).stdout
        assert "Candidate: 1.4.2-2.0.1" in policy()
        prefs = tmp_path / "preferences.d"
        prefs.mkdir()
        (prefs / "mesos-testbed").write_text(apt_preferences(info.newer))
        pinned = policy(f"-oDir::Etc::PreferencesParts={prefs}",
                        "-oDir::Etc::Preferences=/dev/null")
        assert "Candidate: 1.4.1-2.0.1" in pinned
        assert re.search(r"^ +1.4.2-2.0.1 100$", pinned, re.M), pinned
        shown = subprocess.run(["apt-cache", *opts, "show", "mesos=1.4.2-2.0.1"],
                               capture_output=True, text=True)
        assert shown.returncode == 0 and "Version: 1.4.2-2.0.1" in shown.stdout
    finally:
        server.stop()


@pytest.mark.parametrize("name,version,libdir,module,expected", [
    ("mesos", "1.4.1-2.0.1", "usr/lib/mesos-standin", "mesos_master", "mesos 1.4.1"),
    ("mesos", "1.4.1-2.0.1", "usr/lib/mesos-standin", "mesos_slave", "mesos 1.4.1"),
    ("mesos", "1.4.2-2.0.1", "usr/lib/mesos-standin", "mesos_slave", "mesos 1.4.2"),
    ("marathon", "1.4.8-1.0.660.debian90", "usr/share/marathon/lib", "marathon", "1.4.8"),
    ("marathon", "1.4.9-1.0.0.debian90", "usr/share/marathon/lib", "marathon", "1.4.9"),
])
def test_packaged_daemons_run_from_their_own_copy(built, tmp_path, name, version, libdir,
                                                  module, expected):
    """The modules shipped in the .deb import on their own and know their package's version."""
    subprocess.run(["dpkg-deb", "-x", str(deb(built[0] / "out", name, version)),
                    str(tmp_path)], check=True)
    r = subprocess.run([sys.executable, "-m", f"standins.{module}", "--version"],
                       cwd=tmp_path / libdir, capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == expected
