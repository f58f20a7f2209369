"""Time per call and page faults per call in a plain process: glibc's allocator as a user's
script has it (``run.py`` fixes its mmap and trim thresholds for every system alike, which
hides what fresh pages cost a program that allocates large temporaries on every call).

    python benchmarks/page_faults.py [--workloads W7] [--systems s2s_ad,jax,numpy] [--default-threads]

Each (variant, system) runs as a script would: it sets one thread per framework in its
environment before importing numpy (``threads.apply()``; with ``--default-threads``, nothing),
and runs twice, in fresh processes sharing an empty disk cache; the
second run is reported: a script run again, its programs loaded from the disk cache (the first
run's compile itself frees large blocks, which changes how glibc serves the later ones). A
run makes a few warm-up calls, then 7 batches of 15 calls (the median batch's median is reported) and
the minor page faults of 10 more calls (``getrusage``). Whether a program that frees large
temporaries on every call faults depends on the process's history (glibc raises its
thresholds as it sees large blocks freed; threads get arenas of their own).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import threads  # noqa: E402

CHILD = """
import json, resource, statistics, sys, time
sys.path.insert(0, sys.argv[3])
import threads
if sys.argv[4] == "one":
    threads.apply()  # (as a script does before importing numpy)
import workloads
key, system = sys.argv[1], sys.argv[2]
(variant,) = [v for v in workloads.variants([key.split()[0]]) if v.key == key]
impl = variant.builders[system]()
for _ in range(5):
    impl.grad()
time.sleep(2)  # (a background compile finishes)
for _ in range(5):
    impl.grad()
batches = []
for _ in range(7):
    times = []
    for _ in range(15):
        t = time.perf_counter()
        impl.grad()
        times.append(time.perf_counter() - t)
    batches.append(statistics.median(times))
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    impl.grad()
faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10
print(json.dumps({"seconds": statistics.median(batches), "faults": faults}))
"""


def measure(key: str, system: str, default_threads: bool = False) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in threads.THREAD_ENV}
    with tempfile.TemporaryDirectory(prefix="s2s_ad_page_faults_", ignore_cleanup_errors=True) as cache:
        env["S2S_AD_CACHE_DIR"] = cache
        for _ in range(2):  # the second run loads what the first compiled
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, key, system, str(HERE), "default" if default_threads else "one"],
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workloads", default="W7")
    p.add_argument("--systems", default="s2s_ad,jax,numpy")
    p.add_argument("--default-threads", action="store_true", help="each library's default threads")
    ns = p.parse_args()
    import workloads

    systems = ns.systems.split(",")
    print("| variant | " + " | ".join(systems) + " |")
    print("| --- |" + " --- |" * len(systems))
    for v in workloads.variants(ns.workloads.split(",")):
        cells = []
        for system in systems:
            r = measure(v.key, system, ns.default_threads)
            if "error" in r:
                cells.append(f"— ({r['error'][:60]})")
            else:
                cells.append(f"{r['seconds'] * 1e3:.2f} ms ({r['faults']:.0f} faults/call)")
        print(f"| {v.key} | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
