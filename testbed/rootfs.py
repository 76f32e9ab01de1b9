"""Root file systems for the testbed's hosts: two cached layers and one overlay per host.

- base: `debootstrap --variant=minbase` of Debian bookworm from the mirror this machine's own
  apt uses (read at run time), made bootable in a container (console-getty masked, no SSH host
  keys, empty machine-id, ed25519-only sshd, the machine's apt sources). ~65 s, built once.
- heavy: an overlay upper directory on top of base with Java and python3-kazoo installed and
  the zookeeper/zookeeperd .debs *downloaded only* into /var/cache/apt/archives, so installing
  zookeeperd on a host runs its real postinst yet needs no download. Never `apt-get clean`ed.
- per host: `overlay lowerdir=heavy:base` with its own upper dir (copy-on-write, a few MB).
Both layers are built in a `.tmp` directory and renamed into place, so a failed build is never
taken for a cached one; a stamp ties heavy to the base it was built on.
"""
from __future__ import annotations

import glob
import os
import shutil
import subprocess
import uuid
from pathlib import Path

from testbed import config
from testbed.net import run

BASE = config.CACHE_DIR / "base"
HEAVY = config.CACHE_DIR / "heavy"
BASE_STAMP = config.CACHE_DIR / "base.stamp"
HEAVY_STAMP = config.CACHE_DIR / "heavy.stamp"


def machine_apt_sources() -> list[config.AptSource]:
    """Entries of the machine's own apt configuration, deb822 and one-line files alike."""
    out = []
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        out += config.parse_deb822(Path(path).read_text())
    for path in ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list")):
        if os.path.exists(path):
            out += config.parse_one_line(Path(path).read_text())
    return out


def machine_apt_options() -> str:
    """The machine's Acquire::Check-Valid-Until / Check-Date settings: its mirror may be a
    snapshot whose Release files have expired, and the hosts use the same mirror."""
    dump = subprocess.run(["apt-config", "dump"], capture_output=True, text=True).stdout
    keep = [ln for ln in dump.splitlines()
            if ln.startswith(("Acquire::Check-Valid-Until ", "Acquire::Check-Date "))]
    return "".join(ln + "\n" for ln in keep)


def _copy_apt_config(root: Path) -> None:
    """Give a root the machine's apt sources (and nothing from its apt.conf.d but the above)."""
    dst = root / "etc/apt"
    for old in glob.glob(str(dst / "sources.list.d/*")):
        os.unlink(old)
    (dst / "sources.list").write_text("")
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")
                       + glob.glob("/etc/apt/sources.list.d/*.list")):
        shutil.copy(path, dst / "sources.list.d" / os.path.basename(path))
    if os.path.exists("/etc/apt/sources.list"):
        shutil.copy("/etc/apt/sources.list", dst / "sources.list")
    (dst / "apt.conf.d/99testbed-machine").write_text(machine_apt_options())


def _stamp(path: Path) -> str | None:
    return path.read_text().strip() if path.exists() else None


def ensure_base(log) -> str:
    """Build the base layer unless a current one is cached; returns its stamp."""
    want = f"v{config.BASE_VERSION}"
    stamp = _stamp(BASE_STAMP)
    if BASE.is_dir() and stamp and stamp.startswith(want + "-"):
        return stamp
    config.CACHE_DIR.mkdir(parents=True, exist_ok=True)
    mirror = config.debian_mirror(machine_apt_sources())
    tmp = config.CACHE_DIR / "base.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"building the base layer with debootstrap (about a minute) into {BASE}")
    with open(config.CACHE_DIR / "base.log", "w") as out:
        run(["debootstrap", "--variant=minbase", "--include=" + ",".join(config.BASE_PACKAGES),
             config.SUITE, str(tmp), mirror], stdout=out, stderr=subprocess.STDOUT)
    # A getty on the console fights nspawn's passive console; nothing logs in there.
    (tmp / "etc/systemd/system/console-getty.service").symlink_to("/dev/null")
    # Host keys and machine-id are per host (written by prepare_host); debootstrap copied or
    # generated ones that every host would otherwise share.
    for key in glob.glob(str(tmp / "etc/ssh/ssh_host_*")):
        os.unlink(key)
    (tmp / "etc/machine-id").write_text("")
    for stale in ("etc/hostname", "var/lib/dbus/machine-id"):
        p = tmp / stale
        if p.is_file() or p.is_symlink():
            p.unlink()
    (tmp / "etc/ssh/sshd_config.d/testbed.conf").write_text(
        "# Only the per-host ed25519 key exists (RSA keys cost ~0.6 s each per host).\n"
        "HostKey /etc/ssh/ssh_host_ed25519_key\n"
        "PermitRootLogin prohibit-password\n")
    _copy_apt_config(tmp)
    shutil.rmtree(BASE, ignore_errors=True)
    tmp.rename(BASE)
    stamp = f"{want}-{uuid.uuid4().hex[:12]}"
    BASE_STAMP.write_text(stamp + "\n")
    HEAVY_STAMP.unlink(missing_ok=True)
    return stamp


def ensure_heavy(base_stamp: str, log) -> None:
    """Build the heavy layer on the current base unless cached for it."""
    want = f"v{config.HEAVY_VERSION}-on-{base_stamp}"
    if HEAVY.is_dir() and _stamp(HEAVY_STAMP) == want:
        return
    tmp = config.CACHE_DIR / "heavy.tmp"
    _teardown_build_mounts(tmp)
    shutil.rmtree(tmp, ignore_errors=True)
    upper, work, mnt = tmp / "upper", tmp / "work", tmp / "mnt"
    for d in (upper, work, mnt):
        d.mkdir(parents=True)
    log(f"building the heavy layer (Java, python3-kazoo, zookeeperd .debs) into {HEAVY}")
    run(["mount", "-t", "overlay", "overlay", "-o",
         f"lowerdir={BASE},upperdir={upper},workdir={work}", str(mnt)])
    try:
        run(["mount", "-t", "proc", "proc", str(mnt / "proc")])
        run(["mount", "--bind", "/dev", str(mnt / "dev")])
        shutil.copy("/etc/resolv.conf", mnt / "etc/resolv.conf")
        # No daemon may start inside the build chroot.
        rc_policy = mnt / "usr/sbin/policy-rc.d"
        rc_policy.write_text("#!/bin/sh\nexit 101\n")
        rc_policy.chmod(0o755)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND": "noninteractive",
               "LC_ALL": "C"}
        chroot = ["chroot", str(mnt)]
        with open(config.CACHE_DIR / "heavy.log", "w") as out:
            kw = dict(stdout=out, stderr=subprocess.STDOUT, env=env)
            run(chroot + ["apt-get", "update"], **kw)
            run(chroot + ["apt-get", "install", "-y", "--no-install-recommends"]
                + config.HEAVY_PACKAGES, **kw)
            # Download only, with the default Recommends, exactly what a later
            # `apt-get install zookeeperd` on a host will want.
            run(chroot + ["apt-get", "install", "-y", "--download-only"]
                + config.DOWNLOAD_ONLY_PACKAGES, **kw)
        rc_policy.unlink()
        (mnt / "etc/resolv.conf").unlink()
    finally:
        _teardown_build_mounts(tmp)
    shutil.rmtree(HEAVY, ignore_errors=True)
    upper.rename(HEAVY)
    shutil.rmtree(tmp)
    HEAVY_STAMP.write_text(want + "\n")


def _teardown_build_mounts(tmp: Path) -> None:
    mnt = tmp / "mnt"
    for sub in ("proc", "dev", ""):
        target = mnt / sub if sub else mnt
        if os.path.ismount(target):
            subprocess.run(["umount", str(target)], check=False)


def host_dirs(name: str) -> tuple[Path, Path, Path]:
    d = config.HOSTS_DIR / name
    return d / "upper", d / "work", d / "root"


def mount_host_root(name: str) -> Path:
    """Mount (idempotently) the host's overlay and return its root."""
    upper, work, root = host_dirs(name)
    for d in (upper, work, root):
        d.mkdir(parents=True, exist_ok=True)
    if not os.path.ismount(root):
        run(["mount", "-t", "overlay", config.PREFIX + name, "-o",
             f"lowerdir={HEAVY}:{BASE},upperdir={upper},workdir={work}", str(root)])
    return root


def prepare_host(root: Path, name: str, etc_hosts: str, pubkey: str,
                 apt_preferences: str = "") -> None:
    """Write what makes a copy of the layers into this host: name, hosts, identity, keys, and
    the pins of the stand-in packages' newer releases (see testbed/repo.py)."""
    (root / "etc/hostname").write_text(name + "\n")
    write_etc_hosts(root, etc_hosts)
    if apt_preferences:
        (root / "etc/apt/preferences.d/mesos-testbed").write_text(apt_preferences)
    (root / "etc/machine-id").write_text(uuid.uuid4().hex + "\n")
    # The hosts resolve names with the machine's resolver (reached through the NAT).
    shutil.copy("/etc/resolv.conf", root / "etc/resolv.conf")
    key = root / "etc/ssh/ssh_host_ed25519_key"
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"root@{name}",
             "-f", str(key)])
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(pubkey)
    (ssh_dir / "authorized_keys").chmod(0o600)
    for user in config.SUDO_USERS:
        add_sudo_user(root, user, pubkey)


def add_sudo_user(root: Path, user: config.SudoUser, pubkey: str) -> None:
    """A login with the testbed key that reaches root through sudo: without a password
    (NOPASSWD), or only with `user.password` (sudo asks for it)."""
    if f"\n{user.name}:" not in "\n" + (root / "etc/passwd").read_text():
        run(["useradd", "--root", str(root), "-m", "-s", "/bin/bash", "-p", "*", user.name])
        if user.password:
            subprocess.run(["chpasswd", "--root", str(root)], input=f"{user.name}:{user.password}\n",
                           text=True, check=True, capture_output=True)
    uid = gid = None
    for line in (root / "etc/passwd").read_text().splitlines():
        fields = line.split(":")
        if fields[0] == user.name:
            uid, gid = int(fields[2]), int(fields[3])
    home = root / "home" / user.name
    ssh_dir = home / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(pubkey)
    (ssh_dir / "authorized_keys").chmod(0o600)
    for path in (ssh_dir, ssh_dir / "authorized_keys"):
        os.chown(path, uid, gid)
    rule = "ALL=(ALL:ALL) " + ("ALL" if user.password else "NOPASSWD: ALL")
    sudoers = root / "etc/sudoers.d" / user.name
    sudoers.write_text(f"{user.name} {rule}\n")
    sudoers.chmod(0o440)


def write_etc_hosts(root: Path, text: str) -> None:
    """/etc/hosts of a host (atomically: the host may be reading it)."""
    tmp = root / "etc/.hosts.testbed"
    tmp.write_text(text)
    tmp.rename(root / "etc/hosts")


def host_mounts(name: str = "") -> list[str]:
    """Every mount point under the testbed's hosts directory (ours by location), or under
    one host's directory."""
    prefix = str(config.HOSTS_DIR / name) + "/" if name else str(config.HOSTS_DIR) + "/"
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp.startswith(prefix):
                out.append(mp)
    return out


def remove_hosts_dir(name: str = "") -> None:
    """Unmount every host root (deepest first) and delete the per-host directories; or only
    those of host `name`."""
    for mp in sorted(host_mounts(name), key=len, reverse=True):
        if subprocess.run(["umount", mp], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", mp], check=False)
    if not host_mounts(name):
        shutil.rmtree(config.HOSTS_DIR / name if name else config.HOSTS_DIR,
                      ignore_errors=True)
