"""Build the testbed's signed apt repository of stand-in Mesosphere packages (test equipment).

The real `mesos`, `marathon`, `chronos` and `mesosphere` packages are not available to these
machines, so the testbed serves its own: .debs built with `dpkg-deb` that install the same files,
conffiles, units and maintainer-script behaviour as the real ones (Mesosphere's packaging), with the
Python stand-in daemons of `testbed/standins` in place of the real binaries. The repository has
the layout apt expects (`debian/dists/<suite>/...`, `debian/pool/...`) and is signed with a
testbed key generated once and cached, so the project's tasks can exercise `signed-by` keyrings
exactly as against a real third-party repository.

    info = build_repo(Path("/srv/testbed-repo"))
    # serve /srv/testbed-repo over HTTP; on a host:
    #   deb [signed-by=/etc/apt/keyrings/mesos-testbed.asc] http://BRIDGE:8000/debian bookworm main

Two releases of each stand-in package are in the pool (one suite, one component), so that an
upgrade installs a newer version for real: mesos and mesosphere 1.4.1 and 1.4.2, marathon 1.4.8
and 1.4.9 (1.6.322 and 1.6.352 for a 1.6 testbed), each daemon reporting its own version
(`/version`, `/v2/info`, `mesos-master --version`). Chronos has one release: no day-2 operation
upgrades it. apt must take the newer release only when asked, so that a fresh host keeps
getting the current one and the tests keep their meaning: the testbed gives every host the
pins of `apt_preferences` (the newer versions at priority 100, below the default 500). So
`apt-get install mesos` installs 1.4.1-2.0.1, `apt-get install mesos=1.4.2-2.0.1` installs the
newer one, and neither `apt-get upgrade` nor a re-run ever takes a host back or forth by itself.
A pin rather than a second suite or component, because the tool writes one source line per
host (repo_url, repo_suite, repo_component), and a pin leaves that line exactly as an operator
would have it.

Rebuilding is skipped when nothing that goes into the repository changed (a stamp file holds a
hash of the inputs), so calling it on every testbed start costs milliseconds.
"""
import dataclasses
import gzip
import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import tempfile

HERE = pathlib.Path(__file__).resolve().parent
STANDINS = HERE / "standins"
PKG = STANDINS / "pkg"
DEFAULT_GNUPGHOME = pathlib.Path(os.environ.get("MESOS_TESTBED_GNUPGHOME",
                                                "/var/cache/mesos-testbed/gpg"))
KEY_UID = "Mesos testbed repository (test equipment) <mesos-testbed@localhost>"
DISTRO = "debian"
EPOCH = "1514764800"  # fixed file dates (SOURCE_DATE_EPOCH): same inputs, same .debs
MESOS_VERSIONS = ("1.4.1-2.0.1", "1.4.2-2.0.1")   # (current, newer)
CHRONOS_VERSION = "2.5.1-0.1.20171211074431.debian90"
# Package versions as the real repository named them; other Marathon versions get the pattern.
MARATHON_VERSIONS = {"1.4.8": "1.4.8-1.0.660.debian90", "1.6.322": "1.6.322-2.0.229.debian90"}
# The next release of each Marathon line the testbed offers; others: the patch number + 1.
MARATHON_NEXT = {"1.4.8": "1.4.9", "1.6.322": "1.6.352"}
MAINTAINER = "Mesos testbed <mesos-testbed@localhost>"


@dataclasses.dataclass(frozen=True)
class RepoInfo:
    key_fingerprint: str          # 40 upper-case hex digits
    key_file: pathlib.Path        # ASCII-armored public key: out_dir/key.asc
    distro_path: str              # "debian": the URL path under out_dir
    suite: str
    packages: dict                # name -> version a plain `apt-get install` takes
    newer: dict                   # name -> the newer version, installed only when asked


def build_repo(out_dir, suite="bookworm", marathon_version="1.4.8", gnupghome=None):
    """Build (or reuse) the signed repository under out_dir; see the module docstring."""
    out_dir = pathlib.Path(out_dir)
    gnupghome = pathlib.Path(gnupghome or DEFAULT_GNUPGHOME)
    current, newer = package_releases(marathon_version)
    try:
        fingerprint = _ensure_key(gnupghome)
        info = RepoInfo(fingerprint, out_dir / "key.asc", DISTRO, suite, current, newer)
        stamp = out_dir / ".build-stamp"
        digest = _inputs_digest(suite, marathon_version, [current, newer], fingerprint)
        if not (stamp.exists() and stamp.read_text() == digest and info.key_file.exists()
                and (out_dir / DISTRO / "dists" / suite / "InRelease").exists()):
            _build(out_dir, suite, [current, newer], gnupghome, fingerprint)
            stamp.write_text(digest)
        return info
    finally:
        # gpg leaves an agent running for this home: end it, so no process outlives the call.
        subprocess.run(["gpgconf", "--homedir", str(gnupghome), "--kill", "gpg-agent"],
                       capture_output=True)


def _build(out_dir, suite, releases, gnupghome, fingerprint):
    out_dir.mkdir(parents=True, exist_ok=True)
    _export_key(gnupghome, fingerprint, out_dir)
    repo = out_dir / DISTRO
    shutil.rmtree(repo / "pool", ignore_errors=True)
    shutil.rmtree(repo / "dists" / suite, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=".build-", dir=out_dir) as tmp:
        for versions in releases:
            for name, version in versions.items():
                tree = pathlib.Path(tmp) / f"{name}_{version}"
                _PACKAGES[name](tree, version)
                deb = repo / "pool" / "main" / name[0] / name / f"{name}_{version}_all.deb"
                deb.parent.mkdir(parents=True, exist_ok=True)
                subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build",
                                str(tree), str(deb)], check=True, capture_output=True,
                               env=dict(os.environ, SOURCE_DATE_EPOCH=EPOCH))
    _write_indexes(repo, suite)
    _sign(gnupghome, fingerprint, repo / "dists" / suite)


def package_releases(marathon_version):
    """({package: version} a plain install takes, {package: newer version}) for a testbed
    whose Marathon is `marathon_version` (upstream form, e.g. 1.4.8)."""
    major_minor, _, patch = marathon_version.rpartition(".")
    next_marathon = MARATHON_NEXT.get(marathon_version, f"{major_minor}.{int(patch) + 1}")
    current = {"mesos": MESOS_VERSIONS[0], "marathon": _marathon_package(marathon_version),
               "chronos": CHRONOS_VERSION, "mesosphere": MESOS_VERSIONS[0]}
    newer = {"mesos": MESOS_VERSIONS[1], "marathon": _marathon_package(next_marathon),
             "mesosphere": MESOS_VERSIONS[1]}
    return current, newer


def _marathon_package(upstream):
    return MARATHON_VERSIONS.get(upstream, f"{upstream}-1.0.0.debian90")


def apt_preferences(newer):
    """/etc/apt/preferences.d/mesos-testbed for the hosts: the newer versions only when asked."""
    stanzas = [f"Explanation: the testbed's repository (test equipment) also carries {name} "
               f"{version}: installed only when asked for ({name}={version})\n"
               f"Package: {name}\nPin: version {version}\nPin-Priority: 100\n"
               for name, version in sorted(newer.items())]
    return "\n".join(stanzas)


def marathon_reads_conf_dir(marathon_version):
    """Marathon <= 1.4 reads /etc/marathon/conf; 1.5 and later only /etc/default/marathon."""
    major, minor = (int(x) for x in marathon_version.split(".")[:2])
    return (major, minor) < (1, 5)


# ---- signing key ---------------------------------------------------------------------------
def _gpg(home, *args, **kwargs):
    return subprocess.run(["gpg", "--homedir", str(home), "--batch", "--quiet", *args],
                          check=True, capture_output=True, **kwargs)


def _ensure_key(home):
    """Fingerprint of the testbed key in `home`, generated (no passphrase) on first use."""
    home.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(home, 0o700)
    cached = home / "testbed-fingerprint"  # spares a gpg run when the repository is current
    if cached.exists() and (home / "pubring.kbx").exists():
        return cached.read_text().strip()
    fpr = _find_key(home)
    if fpr is None:
        _gpg(home, "--passphrase", "", "--pinentry-mode", "loopback",
             "--quick-gen-key", KEY_UID, "ed25519", "sign", "never")
        fpr = _find_key(home)
    cached.write_text(fpr + "\n")
    return fpr


def _find_key(home):
    out = _gpg(home, "--with-colons", "--list-secret-keys", text=True).stdout
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("sec:"):
            for nxt in lines[i + 1:]:
                if nxt.startswith("fpr:"):
                    return nxt.split(":")[9].upper()
    return None


def _export_key(home, fpr, out_dir):
    (out_dir / "key.asc").write_bytes(_gpg(home, "--armor", "--export", fpr).stdout)
    (out_dir / "key.gpg").write_bytes(_gpg(home, "--export", fpr).stdout)


def _sign(home, fpr, dist):
    release = dist / "Release"
    for path in (dist / "InRelease", dist / "Release.gpg"):
        path.unlink(missing_ok=True)
    common = ["--pinentry-mode", "loopback", "--passphrase", "", "--local-user", fpr,
              "--digest-algo", "SHA512"]
    _gpg(home, *common, "--clearsign", "--output", str(dist / "InRelease"), str(release))
    _gpg(home, *common, "--armor", "--detach-sign", "--output", str(dist / "Release.gpg"),
         str(release))


# ---- indexes ---------------------------------------------------------------------------------
def _write_indexes(repo, suite):
    """Packages(.gz) for amd64 (arch `all` packages are listed there, as apt expects) + Release."""
    binary = repo / "dists" / suite / "main" / "binary-amd64"
    binary.mkdir(parents=True, exist_ok=True)
    packages = subprocess.run(["apt-ftparchive", "packages", "pool/main"], cwd=repo,
                              check=True, capture_output=True).stdout
    (binary / "Packages").write_bytes(packages)
    with open(binary / "Packages.gz", "wb") as raw:
        with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            gz.write(packages)
    (binary / "Release").write_text(
        f"Archive: {suite}\nComponent: main\nOrigin: mesos-testbed\nLabel: mesos-testbed\n"
        f"Architecture: amd64\n")
    conf = [f"-oAPT::FTPArchive::Release::{k}={v}" for k, v in (
        ("Origin", "mesos-testbed"), ("Label", "mesos-testbed"), ("Suite", suite),
        ("Codename", suite), ("Architectures", "amd64"), ("Components", "main"),
        ("Description", "Stand-in Mesosphere packages for the testbed (test equipment)"))]
    release = subprocess.run(["apt-ftparchive", *conf, "release", f"dists/{suite}"], cwd=repo,
                             check=True, capture_output=True).stdout
    (repo / "dists" / suite / "Release").write_bytes(release)


# ---- package trees ---------------------------------------------------------------------------


def _put(root, path, text, mode=0o644):
    target = root / path.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    target.chmod(mode)
    return target


def _control(root, name, version, description, depends="", recommends="", conffiles=(),
             units=()):
    fields = [f"Package: {name}", f"Version: {version}", "Architecture: all",
              f"Maintainer: {MAINTAINER}", "Section: misc", "Priority: optional"]
    if depends:
        fields.append(f"Depends: {depends}")
    if recommends:
        fields.append(f"Recommends: {recommends}")
    fields.append(f"Description: {description}\n TEST EQUIPMENT: a stand-in built by the "
                  f"project's testbed, not the real package.")
    _put(root, "DEBIAN/control", "\n".join(fields) + "\n")
    if conffiles:
        _put(root, "DEBIAN/conffiles", "".join(f"{c}\n" for c in conffiles))
    for script in ("postinst", "prerm", "postrm") if units else ():
        text = (PKG / script).read_text().replace("@UNITS@", " ".join(units))
        _put(root, f"DEBIAN/{script}", text, 0o755)


def _python(root, libdir, module, entry, versions):
    """Install the stand-in modules under libdir and an executable entry point."""
    dest = root / libdir.lstrip("/") / "standins"
    dest.mkdir(parents=True)
    for src in sorted(STANDINS.glob("*.py")):
        shutil.copy(src, dest / src.name)
    (dest / "_versions.json").write_text(json.dumps(
        {k: v.split("-")[0] for k, v in versions.items()}))
    _put(root, entry, f'#!/usr/bin/python3\n"""Stand-in daemon (test equipment): '
                      f'runs standins.{module}."""\nimport sys\n\nsys.path.insert(0, '
                      f'"{libdir}")\nfrom standins.{module} import main  # noqa: E402\n\n'
                      f"sys.exit(main())\n", 0o755)


def _mesos(root, version):
    etc = {
        "/etc/mesos/zk": "zk://localhost:2181/mesos\n",
        "/etc/mesos-master/quorum": "1\n",
        "/etc/mesos-master/work_dir": "/var/lib/mesos\n",
        "/etc/mesos-slave/work_dir": "/var/lib/mesos\n",
        "/etc/default/mesos": 'LOGS=/var/log/mesos\nULIMIT="-n 8192"\n',
        "/etc/default/mesos-master": "PORT=5050\nZK=`cat /etc/mesos/zk`\n",
        "/etc/default/mesos-slave": "MASTER=`cat /etc/mesos/zk`\n",
    }
    for path, text in etc.items():
        _put(root, path, text)
    for d in ("var/lib/mesos", "var/log/mesos"):
        (root / d).mkdir(parents=True)
    _put(root, "/usr/bin/mesos-init-wrapper", (PKG / "mesos-init-wrapper").read_text(), 0o755)
    units = ("mesos-master.service", "mesos-slave.service")
    for unit in units:
        _put(root, f"/lib/systemd/system/{unit}", (PKG / unit).read_text())
    versions = {"mesos": version}
    _python(root, "/usr/lib/mesos-standin", "mesos_master", "/usr/sbin/mesos-master", versions)
    _put(root, "/usr/sbin/mesos-slave", (root / "usr/sbin/mesos-master").read_text().replace(
        "mesos_master", "mesos_slave"), 0o755)
    _control(root, "mesos", version, "Cluster resource manager with efficient resource "
             "isolation", depends="python3, python3-kazoo", recommends="zookeeper, zookeeperd",
             conffiles=sorted(etc), units=units)
    return root


def _launcher(name, daemon, conf_dir, prefix, zk_flag, zk_value):
    text = (PKG / "launcher").read_text()
    for key, value in (("@NAME@", name), ("@DAEMON@", daemon), ("@CONF_DIR@", conf_dir),
                       ("@PREFIX@", prefix), ("@ZK_FLAG@", zk_flag),
                       ("@ZK_VALUE@", zk_value)):
        text = text.replace(key, value)
    return text


def _marathon(root, version):
    daemon = "/usr/share/marathon/bin/marathon-standin"
    conf_dir = "1" if marathon_reads_conf_dir(version.split("-")[0]) else "0"
    _put(root, "/usr/bin/marathon", _launcher("marathon", daemon, conf_dir, "MARATHON", "zk",
                                              "zk://${hosts}/marathon"), 0o755)
    _put(root, "/lib/systemd/system/marathon.service", (PKG / "marathon.service").read_text())
    _python(root, "/usr/share/marathon/lib", "marathon", daemon,
            {"marathon": version})
    _control(root, "marathon", version, "Cluster-wide init and control system for services "
             "running on Apache Mesos", depends="python3, python3-kazoo",
             units=("marathon.service",))
    return root


def _chronos(root, version):
    daemon = "/usr/share/chronos/bin/chronos-standin"
    _put(root, "/etc/chronos/conf/http_port", "4400\n")
    _put(root, "/usr/bin/chronos", _launcher("chronos", daemon, "1", "CHRONOS", "zk_hosts",
                                             "${hosts}"), 0o755)
    _put(root, "/lib/systemd/system/chronos.service", (PKG / "chronos.service").read_text())
    _python(root, "/usr/share/chronos/lib", "chronos", daemon, {"chronos": version})
    _control(root, "chronos", version, "Fault tolerant job scheduler for Mesos",
             depends="python3", conffiles=["/etc/chronos/conf/http_port"],
             units=("chronos.service",))
    return root


def _meta(root, version):
    _control(root, "mesosphere", version, "Mesosphere meta package: ZooKeeper, Mesos, "
             "Marathon and Chronos", depends="zookeeper, zookeeperd, mesos, marathon, chronos")
    return root


_PACKAGES = {"mesos": _mesos, "marathon": _marathon, "chronos": _chronos, "mesosphere": _meta}


def sources_digest():
    """A hash of everything in this checkout that goes into the packages. Testbed instances
    started from different checkouts share the cache: each version of the sources builds in a
    directory of its own, so one rebuild never pulls files from under another's server."""
    h = hashlib.sha256()
    for path in sorted([pathlib.Path(__file__), *STANDINS.glob("*.py"), *PKG.iterdir()]):
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


def _inputs_digest(suite, marathon_version, releases, fingerprint):
    h = hashlib.sha256(json.dumps([suite, marathon_version, releases, fingerprint]).encode())
    h.update(sources_digest().encode())
    return h.hexdigest()
