"""Benchmark: `fab cluster` on the local testbed against the SSH floor, with round trips counted.

    MESOS_TESTBED=b1 .venv/bin/python bench/cluster.py --slaves 50 [--runs 5] [--json out.json] [--keep]

1. Brings the testbed instance up fresh with N slaves and times the first `fab cluster`
   (repository, packages, configuration, services on fresh hosts).
2. Then, interleaved, `--runs` times each: the SSH floor (`ssh root@HOST true` to every host
   at once, the system ssh with the testbed key) and a `fab cluster` re-run that has nothing
   to change.
3. Counts the remote round trips of each re-run on every host without asking the tool: sshd
   on each host logs (at LogLevel VERBOSE, which the benchmark sets) one "Starting session:
   command" line per exec channel; the lines within a run's time window are its round trips.

Prints medians, the ratio re-run / floor, round trips per host and fab's peak memory
(ru_maxrss of each fab process). A benchmark, not a test: it asserts nothing but that the runs
succeed and change nothing; the numbers go into the README with the machine they came from.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from testbed import config as tb_config  # noqa: E402
from testbed import hosts as tb  # noqa: E402

SESSION_LINE = "Starting session: command"
VERBOSE_SSHD = "/etc/ssh/sshd_config.d/90-bench-verbose.conf"


def fab(*args: str) -> dict:
    """Run `fab ARGS` on the testbed's inventory: wall time, fab's own peak RSS, the window."""
    env = dict(os.environ, FABRIC_INVENTORY=str(tb_config.INVENTORY))
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started_at = time.time()
        started = time.monotonic()
        pid = subprocess.Popen([sys.executable, "-m", "fabric", *args], cwd=ROOT, env=env,
                               stdout=out, stderr=err, stdin=subprocess.DEVNULL).pid
        # wait4, not wait: the rusage of this one process, for its own peak memory.
        _, status, usage = os.wait4(pid, 0)
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"fab {' '.join(args)} failed:\n{stdout[-4000:]}\n{stderr[-2000:]}")
    changed = sum(int(part.split("=")[1]) for line in stdout.splitlines()
                  for part in line.split() if part.startswith("changed="))
    return {"seconds": round(seconds, 3), "changed": changed, "window": (started_at, time.time()),
            "max_rss_mib": round(usage.ru_maxrss / 1024, 1)}


def ssh_floor(ips: list[str]) -> float:
    """`ssh root@HOST true` to every host at once; seconds until the last one is back."""
    started = time.monotonic()
    procs = [subprocess.Popen(tb.ssh_argv(ip) + ["true"], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for ip in ips]
    for p in procs:
        if p.wait() != 0:
            sys.exit(f"ssh failed: {p.stderr.read().decode()}")
    return round(time.monotonic() - started, 3)


def verbose_sshd(names: list[str]) -> None:
    """sshd logs each exec channel only at LogLevel VERBOSE: set it, reload sshd."""
    script = (f"printf 'LogLevel VERBOSE\\n' > {VERBOSE_SSHD} && "
              "systemctl reload ssh && sleep 0.2")
    with ThreadPoolExecutor(max_workers=32) as pool:
        for name, result in zip(names, pool.map(lambda n: tb.ssh(n, script), names)):
            if result.returncode != 0:
                sys.exit(f"{name}: cannot set sshd's LogLevel: {result.stderr}")


def session_times(name: str, since: float) -> list[float]:
    """The times of the exec channels sshd opened on host `name` since `since`."""
    result = tb.ssh(name, f"journalctl -u ssh -o short-unix --no-pager --since=@{int(since) - 1}",
                    timeout=60)
    return [float(line.split()[0]) for line in result.stdout.splitlines()
            if SESSION_LINE in line and line.split()[0].replace(".", "").isdigit()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slaves", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5, help="interleaved floor/re-run pairs")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="leave the testbed up")
    args = parser.parse_args()
    tb.down(log=lambda *a: None)
    started = time.monotonic()
    tb.up(slaves=args.slaves, log=lambda *a: None)
    state = tb.load_state()
    names = [h["name"] for h in state["hosts"]]
    ips = [h["ip"] for h in state["hosts"]]
    result = {"slaves": args.slaves, "hosts": len(names),
              "testbed_up_seconds": round(time.monotonic() - started, 2)}
    try:
        first = fab("cluster")
        result["first_run"] = {k: v for k, v in first.items() if k != "window"}
        verbose_sshd(names)
        since = time.time()
        floors, reruns = [], []
        for _ in range(args.runs):
            floors.append(ssh_floor(ips))
            reruns.append(fab("cluster"))
        assert not any(r["changed"] for r in reruns), "a re-run changed something"
        with ThreadPoolExecutor(max_workers=32) as pool:
            sessions = dict(zip(names, pool.map(lambda n: session_times(n, since), names)))
        per_run = [{n: sum(r["window"][0] <= t <= r["window"][1] for t in sessions[n])
                    for n in names} for r in reruns]
        floor, rerun = statistics.median(floors), statistics.median(r["seconds"] for r in reruns)
        result.update({
            "ssh_floor_seconds": floors, "rerun_seconds": [r["seconds"] for r in reruns],
            "ssh_floor_median": floor, "rerun_median": rerun,
            "rerun_over_floor": round(rerun / floor, 2),
            "round_trips_per_host_max": max(max(run.values()) for run in per_run),
            "round_trips_per_host_min": min(min(run.values()) for run in per_run),
            "rerun_max_rss_mib": max(r["max_rss_mib"] for r in reruns),
        })
    finally:
        if not args.keep:
            tb.down(log=lambda *a: None)
    print(json.dumps(result, indent=1))
    print(f"\n{result['hosts']} hosts: first run {result['first_run']['seconds']} s; "
          f"re-run {result['rerun_median']} s = {result['rerun_over_floor']} x the SSH floor "
          f"({result['ssh_floor_median']} s); round trips per host "
          f"{result['round_trips_per_host_min']}-{result['round_trips_per_host_max']}; "
          f"fab's peak RSS {result['rerun_max_rss_mib']} MiB")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
