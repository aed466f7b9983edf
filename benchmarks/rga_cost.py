"""What the attention costs: wall-clock of happo_rga.py against happo.py for the same env-steps.

    python benchmarks/rga_cost.py                      # MPE Spread preset, 3 pairs of 200,000 steps
    python benchmarks/rga_cost.py --steps 400000 --repeats 5 --flags="--torch-threads 1"
    python benchmarks/rga_cost.py --rga-flags="--rga-channels 16"

Each pair runs happo.py, then happo_rga.py, as separate processes with the paper preset of
`--env` and evaluation off (the two evaluate alike); `--flags` go to both scripts,
`--rga-flags` to happo_rga.py only.
The two alternate because a shared host's speed drifts by tens of percent within minutes: each
ratio compares neighbours. Wall-clock is the whole process (imports and start-up included); SPS
is what the script reports at its last iteration.
"""

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.throughput import cpu_name  # noqa: E402


def run(script: str, env_id: str, steps: int, extra: list[str]) -> tuple[float, float]:
    """Wall-clock seconds of the whole run and its last reported SPS."""
    cmd = [sys.executable, str(REPO / script), "--env", env_id, "--total-timesteps", str(steps),
           "--eval-interval", "0", "--log-interval", "1", *extra]
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=os.environ.get("TMPDIR", "/tmp"), capture_output=True, text=True)
    wall = time.perf_counter() - start
    if out.returncode:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr[-2000:]}")
    return wall, float(re.findall(r"SPS (\d+)", out.stdout)[-1])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="mpe_spread")
    parser.add_argument("--steps", type=int, default=200_000, help="env-steps per run")
    parser.add_argument("--repeats", type=int, default=3, help="happo.py / happo_rga.py pairs")
    parser.add_argument("--flags", default="", help="flags for both scripts, e.g. '--torch-threads 1'")
    parser.add_argument("--rga-flags", default="", help="flags for happo_rga.py only, e.g. '--rga-channels 16'")
    opts = parser.parse_args()
    both, rga_only = opts.flags.split(), opts.rga_flags.split()

    print(f"hardware: {cpu_name()}, {os.cpu_count()} cores; --env {opts.env}, {opts.steps:,} steps per run"
          + (f"; both: {opts.flags}" if both else "") + (f"; happo_rga.py: {opts.rga_flags}" if rga_only else ""))
    print("| pair | happo.py s (SPS) | happo_rga.py s (SPS) | time ratio |")
    print("|-----:|-----------------:|---------------------:|-----------:|")
    totals = [0.0, 0.0]
    for pair in range(1, opts.repeats + 1):
        base, base_sps = run("happo.py", opts.env, opts.steps, both)
        rga, rga_sps = run("happo_rga.py", opts.env, opts.steps, both + rga_only)
        totals[0] += base
        totals[1] += rga
        print(f"| {pair} | {base:.1f} ({base_sps:,.0f}) | {rga:.1f} ({rga_sps:,.0f}) | {rga / base:.2f} |", flush=True)
    print(f"| all | {totals[0]:.1f} | {totals[1]:.1f} | {totals[1] / totals[0]:.2f} |")
