"""Peak memory, start-up time and speed of a training run, per worker count.

    python benchmarks/football_memory.py --workers 2 4                      # grf_ca_hard preset, 2 iterations
    python benchmarks/football_memory.py --workers 2 --iterations 10
    python benchmarks/football_memory.py --workers 2 -- --num-envs 10      # extra flags for happo.py

Runs `happo.py --env ENV` (the paper's preset) for each worker count, samples the resident set
of the training process and all its workers every half second, and prints per run: the peak
of that sum, the estimate `happo.py` checked it against before starting, the time until the
engines were ready and until the first progress line, and the env-steps/s of the last line.
"""

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common.config import PRESETS  # noqa: E402
from common.envs import football_memory_mb  # noqa: E402


def tree_rss_mb(proc: psutil.Process) -> float:
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return total / 2**20


def measure(env_id: str, workers: int, iterations: int, extra: list[str]) -> dict:
    preset = PRESETS["happo"][env_id]
    batch = preset["num_envs"] * preset["num_steps"]
    cmd = [sys.executable, "-u", str(REPO / "happo.py"), "--env", env_id, "--num-workers", str(workers),
           "--total-timesteps", str(iterations * batch), "--log-interval", "1", *extra]
    start = time.time()
    proc = subprocess.Popen(cmd, cwd=os.environ.get("TMPDIR", "/tmp"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    watch, peak, ready, first, sps, lines = psutil.Process(proc.pid), 0.0, None, None, None, []
    os.set_blocking(proc.stdout.fileno(), False)
    while proc.poll() is None:
        peak = max(peak, tree_rss_mb(watch))
        for line in iter(proc.stdout.readline, ""):
            lines.append(line)
            if "ready in" in line and ready is None:
                ready = time.time() - start
            if line.startswith("iter "):
                first = first or time.time() - start
                sps = int(re.search(r"SPS (\d+)", line).group(1))
        time.sleep(0.5)
    lines += proc.stdout.readlines()
    if proc.returncode:
        sys.exit(f"happo.py failed ({proc.returncode}):\n{''.join(lines[-20:])}")
    num_eval = preset["num_eval_envs"] if "--eval-interval" not in extra else 0
    estimate = football_memory_mb(env_id, preset["num_envs"], num_eval, workers, preset["num_steps"])
    return dict(peak=peak, estimate=estimate, ready=ready, first=first, sps=sps, total=time.time() - start)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="grf_ca_hard")
    parser.add_argument("--workers", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--iterations", type=int, default=2, help="training iterations of the preset's batch")
    parser.add_argument("extra", nargs="*", help="flags passed on to happo.py (after --)")
    opts = parser.parse_args()

    print(f"{psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.1f} GiB; "
          f"happo.py --env {opts.env} {' '.join(opts.extra)}, {opts.iterations} iterations")
    print("| workers | peak RSS, all processes | estimate checked at start | engines ready | first progress line | env-steps/s | wall |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for workers in opts.workers:
        r = measure(opts.env, workers, opts.iterations, opts.extra)
        print(f"| {workers} | {r['peak'] / 1024:.2f} GB | {r['estimate'] / 1024:.2f} GB | {r['ready']:.0f} s | "
              f"{r['first']:.0f} s | {r['sps']} | {r['total']:.0f} s |", flush=True)
