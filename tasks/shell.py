"""The shell commands that change a host: atomic file writes, restart marks, apt, keys.

The other shell this project sends lives beside what it serves: each fact's command beside its
parser in `tasks.facts`, each init system's service commands in `tasks.init`. All of them
quote every value with `q` (`shlex.quote`) and return a command string; nothing here opens a
connection, so every command can be checked, and run, in a unit test. File contents travel
base64-encoded, and the commands stick to POSIX sh and coreutils so they run the same on
Ubuntu 14.04 (upstart) and on current systemd hosts.
"""

from __future__ import annotations

import base64
import posixpath
import shlex

q = shlex.quote

# Where a step that changed a service's configuration leaves a mark for `start-services`, so a
# restart is owed even when the steps run in separate `fab` invocations (the runbook's way).
MARKER_DIR = "/var/lib/mesos-fab/restart"


def restart_marker(service: str) -> str:
    return posixpath.join(MARKER_DIR, service)

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


def copy_file(source: str, path: str) -> str:
    """Copy `source` to `path` atomically (a dot file beside it, then a rename)."""
    directory, name = posixpath.split(path)
    tmp = posixpath.join(directory, "." + name + ".new")
    return (f"mkdir -p {q(directory)} && cp {q(source)} {q(tmp)} && mv -fT {q(tmp)} {q(path)}")


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


def wait_for_port(port: int, seconds: int) -> str:
    """Wait (at most `seconds`) until something listens on 127.0.0.1:`port`; never fails. A
    daemon started in the background listens once it has read its configuration."""
    probe = f"until (exec 3<>/dev/tcp/127.0.0.1/{int(port)}) 2>/dev/null; do sleep 0.2; done"
    return f"timeout {int(seconds)} bash -c {q(probe)} || true"


def wait_until(check: str, seconds: int, failure: str) -> str:
    """Run `check` once a second until it succeeds; after `seconds` tries, fail with `failure`."""
    return (
        f"i=0; while [ $i -lt {int(seconds)} ]; do {{ {check} ; }} && exit 0; "
        f"i=$((i+1)); sleep 1; done; echo {q(failure)} >&2; exit 1"
    )
