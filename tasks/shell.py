"""Every shell command this project sends to a host is built here, and nowhere else.

Each function returns a command string; nothing here opens a connection, so every command can be
checked in a unit test. All values reach the shell through `shlex.quote` (`q`), file contents
travel base64-encoded, and the commands stick to POSIX sh and coreutils so they run the same on
Ubuntu 14.04 (upstart) and on current systemd hosts.

These are patchwork's idioms (`exists`, `append`, ...) rebuilt with proper quoting: patchwork
itself cannot be installed beside Fabric 3 (see the README).
"""

from __future__ import annotations

import base64
import posixpath
import shlex

q = shlex.quote

# Where a step that changed a service's configuration leaves a mark for `start-services`, so a
# restart is owed even when the steps run in separate `fab` invocations (the runbook's way).
MARKER_DIR = "/var/lib/mesos-fab/restart"

# Marker in the fact-gathering output; see `gather` and `facts.parse_gather`.
PROBE_PREFIX = "@@probe"


# --- facts -----------------------------------------------------------------------------------

def gather(probes: dict[str, str]) -> str:
    """One script that runs every probe and prints, per probe, its exit code and base64 output.

    A single round trip per host and step: the output of each probe is kept apart (base64 on one
    line) and its exit status is kept too, which `test`-style probes need. `printf '#%s' $?`
    after the output protects trailing newlines from the command substitution; the probe runs
    in a subshell so that an `exit` in it ends only the probe.
    """
    lines = []
    for name, command in probes.items():
        if not name.replace("_", "").replace("-", "").replace(".", "").replace("/", "").isalnum():
            raise ValueError(f"bad probe name {name!r}")
        lines.append(
            f"o=$( ( {command} ) 2>/dev/null; printf '#%s' \"$?\" ); "
            f"printf '%s %s %s ' {q(PROBE_PREFIX)} {q(name)} \"${{o##*#}}\"; "
            f"printf '%s' \"${{o%#*}}\" | base64 | tr -d '\\n'; echo"
        )
    return "\n".join(lines)


def init_system() -> str:
    """Prints systemd, upstart or sysv: the init system that manages services on this host."""
    return (
        "if [ -d /run/systemd/system ]; then echo systemd; "
        "elif [ -x /sbin/initctl ] && /sbin/initctl version 2>/dev/null | grep -q upstart; "
        "then echo upstart; else echo sysv; fi"
    )


def read_file(path: str) -> str:
    """First line `mode owner group`, then the content; exit 3 when the file does not exist."""
    p = q(path)
    return f"if [ -e {p} ]; then stat -c '%a %U %G' {p} && cat {p}; else exit 3; fi"


def exists(path: str) -> str:
    return f"test -e {q(path)}"


def restart_marker(service: str) -> str:
    return posixpath.join(MARKER_DIR, service)


def package_status(packages: list[str]) -> str:
    """`name status version` per package that dpkg knows of (installed or not)."""
    names = " ".join(q(p.split("=", 1)[0]) for p in packages)
    return f"dpkg-query -W -f '${{Package}} ${{Status}} ${{Version}}\\n' {names}"


def package_candidate(package: str) -> str:
    """apt's candidate version for a package that is not installed, or `(none)` when no source
    offers it; nothing for an installed one (apt-cache is slow, and a re-run needs no answer)."""
    p = q(package)
    return (f"dpkg-query -W -f '${{Status}}' {p} 2>/dev/null | grep -q ' installed$' || "
            f"apt-cache policy {p} | sed -n 's/^ *Candidate: *//p'")


def lsb_release() -> str:
    """Two lines: the distributor id (`Ubuntu`, `Debian`) and the codename (`trusty`), from one
    run of lsb_release, a Python script that costs a tenth of a second a call."""
    return "lsb_release -s -i -c"


def apt_supports_signed_by() -> str:
    """Exit 0 when apt understands `[signed-by=...]` in sources (apt 1.1 and later)."""
    return "dpkg --compare-versions \"$(dpkg-query -W -f '${Version}' apt)\" ge 1.1"


def keyring_fingerprints(keyring: str) -> str:
    """Fingerprints in a keyring file, with a throw-away GnuPG home so root's is not touched."""
    return (
        f"test -s {q(keyring)} && g=$(mktemp -d) && "
        f"gpg --homedir \"$g\" --batch --no-default-keyring --keyring {q(keyring)} "
        "--with-colons --fingerprint | sed -n 's/^fpr:*\\([0-9A-F]*\\):*$/\\1/p'; "
        "r=$?; rm -rf \"$g\"; exit $r"
    )


def apt_key_fingerprints() -> str:
    """Fingerprints in apt's legacy trusted keyring, asked only where apt has no signed-by:
    `apt-key` costs more than half a second of gpg per host, and is gone from new releases."""
    return (f"{apt_supports_signed_by()} || "
            "apt-key adv --with-colons --fingerprint | sed -n 's/^fpr:*\\([0-9A-F]*\\):*$/\\1/p'")


def service_running(init: str, service: str) -> str:
    """Exit 0 when the service's process is up.

    On systemd, `is-active` alone is not enough for SysV scripts run through the compatibility
    layer (ZooKeeper on Debian): their unit stays "active (exited)" after the JVM died, so the
    script's own `status` is asked too.
    """
    s = q(service)
    if init == "systemd":
        return (f"systemctl is-active --quiet {s} && "
                f"{{ [ ! -x /etc/init.d/{s} ] || /etc/init.d/{s} status >/dev/null; }}")
    if init == "upstart":
        return f"status {s} 2>/dev/null | grep -q start/running"
    return f"service {s} status >/dev/null"


def service_enabled(init: str, service: str) -> str:
    """Exit 0 when the service starts at boot."""
    s = q(service)
    if init == "systemd":
        return f"systemctl is-enabled --quiet {s}"
    if init == "upstart":
        return f"test -e /etc/init/{s}.conf && ! grep -qsx manual /etc/init/{s}.override"
    return f"ls /etc/rc2.d/S*{s} >/dev/null 2>&1"


def service_installed(init: str, service: str) -> str:
    s = q(service)
    if init == "systemd":
        return (f"systemctl list-unit-files {s}.service 2>/dev/null | grep -q '^{service}\\.service'"
                f" || test -x /etc/init.d/{s}")
    if init == "upstart":
        return f"test -e /etc/init/{s}.conf || test -x /etc/init.d/{s}"
    return f"test -x /etc/init.d/{s}"


# --- changes ---------------------------------------------------------------------------------

def write_file(path: str, content: str, *, mode: str = "644", owner: str = "root",
               group: str = "root", restart: tuple[str, ...] = ()) -> str:
    """Write `content` to `path` atomically, leaving restart markers for `restart` services.

    The temporary file is a dot file in the same directory, so the rename is atomic and a
    leftover after a crash is never read as a flag: mesos-init-wrapper skips dot files, while a
    stray `work_dir.tmp` would become an unknown flag and stop mesos-master. Markers are set
    first: if the write then fails, the worst outcome is one restart too many, never a changed
    file whose service is not restarted. `mv -T`: were `path` a directory, a plain `mv` would
    move the temporary file into it and succeed.
    """
    directory, name = posixpath.split(path)
    payload = base64.b64encode(content.encode()).decode()
    parts = [mark_restart(s) for s in restart]
    parts.append(
        f"mkdir -p {q(directory)} && t=$(mktemp {q(posixpath.join(directory, '.' + name + '.XXXXXX'))}) && "
        f"{{ printf '%s' {q(payload)} | base64 -d > \"$t\" && chown {q(owner + ':' + group)} \"$t\" && "
        f"chmod {q(mode)} \"$t\" && mv -fT \"$t\" {q(path)}; }} || {{ rm -f \"$t\"; exit 1; }}"
    )
    return " && ".join(parts)


def mark_restart(service: str) -> str:
    return f"mkdir -p {q(MARKER_DIR)} && touch {q(restart_marker(service))}"


def clear_restart(service: str) -> str:
    return remove_file(restart_marker(service))


def remove_file(path: str) -> str:
    return f"rm -f {q(path)}"


def apt_update() -> str:
    return "DEBIAN_FRONTEND=noninteractive apt-get update -q"


def apt_install(packages: list[str], *, recommends: bool = True) -> str:
    """Non-interactive install that keeps our edits of the packages' conffiles (`--force-confold`)."""
    extra = "" if recommends else " --no-install-recommends"
    names = " ".join(q(p) for p in packages)
    return ("DEBIAN_FRONTEND=noninteractive apt-get install -y -q"
            f" -o Dpkg::Options::=--force-confold{extra} {names}")


def fetch_key_to_keyring(key_id: str, keyring: str, *, key_url: str = "", keyserver: str = "") -> str:
    """Fetch a signing key, check that it is the expected one, install it as a binary keyring.

    Works in a throw-away GnuPG home. The fingerprint check refuses a key server or mirror that
    hands out another key than the one the inventory names.
    """
    kid = key_id.upper()
    if key_url:
        fetch = f"curl -fsSL {q(key_url)} > \"$g/key\" && gpg --homedir \"$g\" --batch -q --import \"$g/key\""
    else:
        fetch = f"gpg --homedir \"$g\" --batch -q --keyserver {q(keyserver)} --recv-keys {q(kid)}"
    directory, name = posixpath.split(keyring)
    tmp = posixpath.join(directory, "." + name + ".new")
    return (
        "g=$(mktemp -d) && trap 'rm -rf \"$g\"' EXIT && "
        f"{fetch} && "
        f"gpg --homedir \"$g\" --batch --with-colons --fingerprint {q(kid)} | grep -q {q('^fpr:.*' + kid + ':$')} "
        f"|| {{ echo \"key {kid} not found or fingerprint mismatch\" >&2; exit 1; }}; "
        f"mkdir -p {q(directory)} && gpg --homedir \"$g\" --batch --export {q(kid)} > \"$g/out\" && "
        # Copied next to the keyring first: a rename from /tmp could cross file systems.
        f"install -m 644 \"$g/out\" {q(tmp)} && mv -fT {q(tmp)} {q(keyring)}"
    )


def apt_key_recv(key_id: str, *, key_url: str = "", keyserver: str = "") -> str:
    """The tutorial's `apt-key adv --recv`, for releases whose apt has no signed-by."""
    if key_url:
        return f"curl -fsSL {q(key_url)} | apt-key add -"
    return f"apt-key adv --keyserver {q(keyserver)} --recv {q(key_id.upper())}"


def service_restart(init: str, service: str) -> str:
    """Start or restart: `restart` also starts a stopped service, and a SysV script whose
    process died needs `restart` because its unit still counts as active."""
    s = q(service)
    if init == "systemd":
        return f"systemctl restart {s}"
    if init == "upstart":
        # `restart` on a stopped job fails with "Unknown instance": start it instead.
        return f"{{ restart {s} 2>/dev/null || start {s}; }}"
    return f"service {s} restart"


def verify_running(init: str, services: tuple[str, ...], settle: int = 3) -> str:
    """After (re)starts: fail, with the service's last log lines, if one is not running.

    A daemon that rejects its flags or its checkpoint exits within a second of starting, while
    systemd's `restart` has already returned success; `settle` seconds catch that. The
    message comes last, where the failure report (the last lines of stderr) shows it.
    """
    checks = []
    for svc in services:
        logs = (f"journalctl -u {q(svc)} -n 8 --no-pager -o cat >&2" if init == "systemd"
                else f"tail -n 8 /var/log/upstart/{q(svc)}.log >&2" if init == "upstart" else "true")
        checks.append(f"{{ {service_running(init, svc)} ; }} || "
                      f"{{ {logs}; echo {q(svc + ' is not running after its start (log above)')} >&2; exit 1; }}")
    return f"sleep {int(settle)}; " + "; ".join(checks)


def service_enable(init: str, service: str) -> str:
    s = q(service)
    if init == "systemd":
        return f"systemctl enable --quiet {s}"
    if init == "upstart":
        return f"rm -f /etc/init/{s}.override"
    return f"update-rc.d {s} defaults"


def service_disable_now(init: str, service: str) -> str:
    """Stop now and keep from starting at boot (the tutorial's `stop X` + `X.override`)."""
    s = q(service)
    if init == "systemd":
        # Not `disable --now`: for SysV scripts (Debian's zookeeper) systemctl hands the
        # disabling to systemd-sysv-install and then skips the stop.
        return f"systemctl disable --quiet {s} && systemctl stop {s}"
    if init == "upstart":
        override = write_file(f"/etc/init/{service}.override", "manual\n")
        # "Unknown instance" from `stop` means it was not running: success.
        return f"{override} && {{ stop {s} 2>&1 | grep -v 'Unknown instance' >&2; true; }}"
    return f"service {s} stop; update-rc.d {s} disable"


def wait_zookeeper_serving(port: int, modes: tuple[str, ...], seconds: int) -> str:
    """Poll the local ZooKeeper with `srvr` until it reports one of `modes` (quorum reached).

    bash's /dev/tcp rather than nc, which minimal installs lack; ZooKeeper closes the
    connection after answering a four-letter word, so `cat` ends.
    """
    pattern = "^Mode: \\(" + "\\|".join(modes) + "\\)$"
    ask = f"exec 3<>/dev/tcp/127.0.0.1/{int(port)} && echo srvr >&3 && cat <&3"
    return (
        f"i=0; while [ $i -lt {int(seconds)} ]; do "
        f"timeout 3 bash -c {q(ask)} 2>/dev/null | grep -q {q(pattern)} && exit 0; "
        "i=$((i+1)); sleep 1; done; "
        f"echo \"ZooKeeper on port {int(port)} did not reach quorum within {int(seconds)} s\" >&2; exit 1"
    )
