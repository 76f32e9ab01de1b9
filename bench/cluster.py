"""Benchmark: `fab cluster` on the local testbed, first run and idempotent re-run.

    .venv/bin/python bench/cluster.py --slaves 50 [--runs 3] [--json out.json]

Brings the testbed up with N slaves (fresh), times `fab cluster` (install + configure +
start everything), then times re-runs (facts only, nothing to change), and reports wall
times, fab's peak memory (ru_maxrss) and the recap. A benchmark, not a test: it asserts
nothing but that the runs succeed; the numbers go into the README.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from testbed import config as tb_config  # noqa: E402
from testbed import hosts as tb  # noqa: E402


def timed_fab(*args: str) -> dict:
    env = dict(os.environ, FABRIC_INVENTORY=str(tb_config.INVENTORY))
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "fabric", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        sys.exit(f"fab {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    changed = sum(int(part.split("=")[1]) for line in proc.stdout.splitlines()
                  for part in line.split() if part.startswith("changed="))
    return {"seconds": round(seconds, 2), "changed": changed,
            "max_rss_mib": round(max(before, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slaves", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3, help="re-runs to time")
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="leave the testbed up")
    args = parser.parse_args()
    tb.down(log=lambda *a: None)
    started = time.monotonic()
    tb.up(slaves=args.slaves, log=lambda *a: None)
    result = {"slaves": args.slaves, "hosts": args.slaves + 3,
              "testbed_up_seconds": round(time.monotonic() - started, 2)}
    try:
        result["first_run"] = timed_fab("cluster")
        result["re_runs"] = [timed_fab("cluster") for _ in range(args.runs)]
    finally:
        if not args.keep:
            tb.down(log=lambda *a: None)
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
