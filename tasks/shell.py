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
import secrets
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


# What apt-get and dpkg say when another process (unattended-upgrades on a fresh cloud host)
# holds the dpkg or apt lock, from apt 1.0 (Ubuntu 14.04) to 2.x, and dpkg.
DPKG_LOCKED = ("Could not get lock|Unable to lock|Unable to acquire the dpkg frontend lock|"
               "is locked by another process|was locked by another process")


def waiting_for_dpkg_lock(command: str, seconds: int) -> str:
    """`command` (apt-get or dpkg), tried again every 2 s while another process holds the
    dpkg or apt lock, for up to `seconds`; what it waits for is reported as `@@wait` lines
    (tasks.remote shows them). Any other failure, or the lock still held at the end, fails
    with the command's own error."""
    locked = q(DPKG_LOCKED)
    return (
        'e=$(mktemp) || exit 1; w=0; while :; do '
        f'{command} 2>"$e" && {{ rm -f "$e"; exit 0; }}; r=$?; '
        f'if [ $w -lt {int(seconds)} ] && grep -qE {locked} "$e"; then '
        f'echo "@@wait $(grep -m1 -E {locked} "$e")"; sleep 2; w=$((w+2)); '
        f'else [ $w -eq 0 ] || echo "gave up after waiting $w s for the dpkg lock:" >&2; '
        'cat "$e" >&2; rm -f "$e"; exit $r; fi; done'
    )


def apt_update(lock_wait: int) -> str:
    return waiting_for_dpkg_lock("DEBIAN_FRONTEND=noninteractive apt-get update -q", lock_wait)


def apt_install(packages: list[str], lock_wait: int, *, recommends: bool = True) -> str:
    """Non-interactive install that keeps our edits of the packages' conffiles (`--force-confold`)."""
    extra = "" if recommends else " --no-install-recommends"
    names = " ".join(q(p) for p in packages)
    return waiting_for_dpkg_lock("DEBIAN_FRONTEND=noninteractive apt-get install -y -q"
                                 f" -o Dpkg::Options::=--force-confold{extra} {names}", lock_wait)


def dpkg_repair(lock_wait: int) -> str:
    """Finish what an interrupted dpkg left half done (apt refuses to install until then),
    keeping our edits of conffiles as apt_install does."""
    return waiting_for_dpkg_lock(
        "DEBIAN_FRONTEND=noninteractive dpkg --force-confold --configure -a", lock_wait)


def _verified_key(fingerprint: str, key_url: str, keyserver: str) -> str:
    """Fetch a signing key into a throw-away GnuPG home ("$g", removed on exit) and leave in
    "$g/out" exactly the key whose primary fingerprint is `fingerprint`, exported alone: a
    key server or mirror that hands out another key (or more keys) gets nothing trusted."""
    fpr = fingerprint.upper()
    if key_url:
        fetch = (f"curl -fsSL --max-time 60 --max-filesize 1048576 {q(key_url)} > \"$g/key\" && "
                 "gpg --homedir \"$g\" --batch -q --import \"$g/key\"")
    else:
        fetch = f"gpg --homedir \"$g\" --batch -q --keyserver {q(keyserver)} --recv-keys {q(fpr)}"
    primaries = ("gpg --homedir \"$g\" --batch --with-colons --fingerprint | "
                 "awk -F: '$1 == \"pub\" { p = 1; next } p && $1 == \"fpr\" { print $10; p = 0 }'")
    return (
        "g=$(mktemp -d) && trap 'rm -rf \"$g\"' EXIT && "
        f"{fetch} && "
        f"{{ {primaries} | grep -qx {q(fpr)} || "
        f"{{ echo {q(f'the fetched key is not {fpr} (its primary fingerprint): nothing was trusted')} >&2; exit 1; }}; }} && "
        f"gpg --homedir \"$g\" --batch --export {q(fpr)} > \"$g/out\""
    )


def fetch_key_to_keyring(fingerprint: str, keyring: str, *, key_url: str = "",
                         keyserver: str = "") -> str:
    """Fetch and check the signing key (`_verified_key`), then install it alone as a binary
    keyring, for apt's `signed-by`."""
    directory, name = posixpath.split(keyring)
    tmp = posixpath.join(directory, "." + name + ".new")
    return (
        f"{_verified_key(fingerprint, key_url, keyserver)} && mkdir -p {q(directory)} && "
        # Copied next to the keyring first: a rename from /tmp could cross file systems.
        f"install -m 644 \"$g/out\" {q(tmp)} && mv -fT {q(tmp)} {q(keyring)}"
    )


def apt_key_add(fingerprint: str, *, key_url: str = "", keyserver: str = "") -> str:
    """For releases whose apt has no signed-by (apt < 1.1): the same fetched and checked key,
    and only it, added with apt-key."""
    return f"{_verified_key(fingerprint, key_url, keyserver)} && apt-key add \"$g/out\""


def wait_for_port(address: str, port: int, seconds: int) -> str:
    """Wait (at most `seconds`) until something listens on `address`:`port`; never fails. A
    daemon started in the background listens once it has read its configuration."""
    probe = f"until (exec 3<>/dev/tcp/{q(address)}/{int(port)}) 2>/dev/null; do sleep 0.2; done"
    return f"timeout {int(seconds)} bash -c {q(probe)} || true"


def wait_until(check: str, seconds: int, failure: str) -> str:
    """Run `check` once a second until it succeeds; after `seconds` tries, fail with `failure`."""
    return (
        f"i=0; while [ $i -lt {int(seconds)} ]; do {{ {check} ; }} && exit 0; "
        f"i=$((i+1)); sleep 1; done; echo {q(failure)} >&2; exit 1"
    )


# --- how a script reaches root on a host (see tasks.remote) ----------------------------------

# What sudo -S prints when it wants the password; tasks.remote answers only this prompt, so a
# password is never sent to anything else (sudo with cached credentials asks nothing).
SUDO_PROMPT = "[mesos-fab] sudo password:"
LOGINS = ("root", "sudo", "sudo-password")

# Every script runs with the C locale (apt's and dpkg's messages are matched below) and a
# PATH that has the sbin directories, whatever the login's environment.
_ENV = "export LC_ALL=C PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# The supervisor: one line of POSIX sh, the only command line a host sees (a local user can
# read command lines with ps; the script itself, which can hold secrets, travels on stdin).
# "$n" is the script's size. It reads exactly that many bytes into a private directory, refuses
# a script that arrived short, then runs it with that directory as its $1 while a watcher
# reads the rest of stdin: `stop` lets the running change finish and starts no other, `cut`
# also ends the running change (its `timeout` process, which passes the signal to the
# change's whole process group); end of input (the connection lost) counts as `stop`. It
# leaves the script's status in $r. The script never inherits fd 9, the run lock's (a daemon
# it starts would otherwise hold the lock for good).
_SUPERVISE = (
    "umask 077; d=$(mktemp -d) || exit 125; trap 'rm -rf \"$d\"' EXIT; "
    "echo @@ready; head -c \"$n\" > \"$d/script\"; "
    "[ \"$(wc -c < \"$d/script\")\" -eq \"$n\" ] || { echo 'the script arrived incomplete' >&2; exit 125; }; "
    "exec 3<&0; "
    "(while IFS= read -r l; do case \"$l\" in "
    "stop) : > \"$d/stop\";; "
    "cut) : > \"$d/stop\"; : > \"$d/cut\"; p=$(cat \"$d/pid\" 2>/dev/null); "
    "[ -n \"$p\" ] && kill -TERM \"$p\";; esac; done; : > \"$d/stop\") <&3 >/dev/null 2>&1 & "
    "w=$!; exec 3<&-; sh \"$d/script\" \"$d\" </dev/null 9>&-; r=$?; kill \"$w\" 2>/dev/null; "
)
# One round: its status is the supervisor's ($1: the script's size).
SUPERVISOR = f"{_ENV}; n=$1; {_SUPERVISE}exit $r"


def as_root(argv: list[str], login: str) -> str:
    """The command line that runs `argv` as root: as is for a root login, else through sudo,
    which never asks (`-n`: a password prompt would hang) unless a password is configured
    (`-S`: read from stdin, only after SUDO_PROMPT appeared)."""
    if login not in LOGINS:
        raise ValueError(f"unknown login kind {login!r}")
    prefix = {"root": [], "sudo": ["sudo", "-n", "--"],
              "sudo-password": ["sudo", "-S", "-p", SUDO_PROMPT, "--"]}[login]
    return " ".join(q(a) for a in prefix + argv)


def supervised(size: int, login: str) -> str:
    return as_root(["sh", "-c", SUPERVISOR, "mesos-fab", str(int(size))], login)


# A change that ignores SIGTERM at its time limit is killed this many seconds later.
KILL_AFTER = 10


def round_script(units: list[tuple[str, int]]) -> str:
    """The script the supervisor runs: each (command, seconds) in order, each under its own
    time limit, reporting `@@start I` / `@@done I` on stdout (a line of its own, whether or
    not the command ended its output with a newline); before each, it stops (`@@stopped I`,
    exit 130) when the supervisor was told to stop."""
    parts = ['d="$1"']
    for i, (command, seconds) in enumerate(units):
        end = "@@END_" + secrets.token_hex(8)
        while end in command:
            end = "@@END_" + secrets.token_hex(8)
        limit = int(seconds)
        parts.append(
            f'[ -e "$d/stop" ] && {{ echo "@@stopped {i}"; exit 130; }}\n'
            f"cat > \"$d/unit\" <<'{end}'\n{command}\n{end}\n"
            f'echo "@@start {i}"\n'
            # In the background so the watcher can signal it by its pid.
            f'timeout -k {KILL_AFTER} {limit} sh "$d/unit" & echo $! > "$d/pid"; wait $!; r=$?; : > "$d/pid"\n'
            f'if [ $r -ne 0 ]; then [ -e "$d/cut" ] && {{ printf "\\n@@cut {i}\\n"; exit 130; }}; '
            f'[ $r -eq 124 ] && echo "timed out after {limit} s" >&2; exit $r; fi\n'
            f'printf "\\n@@done {i}\\n"'
        )
    return "\n".join(parts) + "\n"


# The run lock: one run at a time per host. A file under /run (gone at reboot, as any holder),
# locked with flock by a process that holds it as long as its connection lives. That process
# also runs the run's first round (its gather), so a run that changes nothing costs each host
# one round trip for both.
RUN_LOCK = "/run/mesos-fab.lock"


def supervised_holding_lock(holder: str, wait: bool, size: int, end: str, login: str) -> str:
    """Lock RUN_LOCK and print `@@locked`, run one round as `supervised` does and print
    `@@end END <its status>` on a line of its own, then hold the lock until stdin ends. When
    another run holds it: print `@@held <what that run wrote>`, then exit 75, or (`wait`)
    wait for it. The holder writes `holder` and its own pid into the file, for the next run
    to name."""
    lock = q(RUN_LOCK)
    waiting = "while ! flock -w 10 9; do echo @@still; done" if wait else "exit 75"
    script = (
        f"{_ENV}; exec 9<>{lock} || exit 125; "
        f"if ! flock -n 9; then echo \"@@held $(head -c 300 {lock} | tr -d '\\n')\"; {waiting}; fi; "
        f"printf '%s (pid %s on the host)\\n' \"$1\" $$ > {lock}; echo @@locked; n=$2; "
        f"{_SUPERVISE}rm -rf \"$d\"; printf '\\n@@end %s %s\\n' \"$3\" \"$r\"; "
        f"cat >/dev/null; : > {lock}"
    )
    return as_root(["sh", "-c", script, "mesos-fab", holder, str(int(size)), end], login)
