"""What a command costs on this machine: env-steps/s, the time of its whole preset, peak memory.
Writes one row per command to results/speed.csv, the one home of these figures: README.md and
docs/speed.md show them as a table generated from it (`<!-- table: speed -->`, benchmarks/tables.py).

    python benchmarks/headline.py                                  # the headline: happo_rga.py on grf_ca_hard
    python benchmarks/headline.py happo.py --env grf_ca_hard --seed 1

Runs the command as typed, stopped after its first iteration (`--stop-at`, so the preset's
schedule is unchanged) with that iteration's evaluation (`--stop-at` ends with one), on every
core the machine has and nothing else running. It samples the resident memory of the training
process and all its env workers every half second. From the output: env-steps/s is the
script's own SPS of the iteration (the rollout and update, start-up excluded); the evaluation's
seconds are the time from the engines being ready to the progress line, less the iteration's.
The preset's time: its iterations at that speed plus its evaluations (one per --eval-interval).
"""

from __future__ import annotations

import csv
import datetime
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.football_memory import tree_rss_mb  # noqa: E402
from benchmarks.throughput import cpu_name  # noqa: E402
from common.config import parse_args  # noqa: E402
from common.envs import CORES  # noqa: E402

HEADLINE = ["happo_rga.py", "--env", "grf_ca_hard", "--seed", "1"]
CSV = REPO / "results" / "speed.csv"
FIELDS = ["command", "machine", "cores", "date", "env_steps_per_s", "evaluation_s", "preset_steps", "preset_hours",
          "peak_memory_gb"]


def measure(command: list[str]) -> dict:
    script, *flags = command
    module = __import__(script.removesuffix(".py"))  # its Args and ALGO; the script's main does not run
    args = parse_args(module.Args, module.ALGO, flags)
    batch = args.num_envs * args.num_steps
    with tempfile.TemporaryDirectory() as cwd:  # runs/ of the measurement goes away with it
        start = time.time()
        proc = subprocess.Popen([sys.executable, "-u", str(REPO / script), *flags, "--stop-at", str(batch),
                                 "--log-interval", "1"], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        watch, peak, ready, progress, lines = psutil.Process(proc.pid), 0.0, None, None, []
        os.set_blocking(proc.stdout.fileno(), False)
        while proc.poll() is None:
            peak = max(peak, tree_rss_mb(watch) / 1024)
            for line in iter(proc.stdout.readline, ""):
                lines.append(line)
                if ready is None and "ready in" in line:
                    ready = time.time()
                if line.startswith("iter "):
                    progress = time.time()
            time.sleep(0.5)
        lines += proc.stdout.readlines()
    if proc.returncode or progress is None:
        sys.exit(f"{script} failed ({proc.returncode}):\n{''.join(lines[-20:])}")
    sps = int(re.search(r"SPS (\d+)", next(line for line in lines if line.startswith("iter "))).group(1))
    evaluation = max(0.0, progress - (ready or start) - batch / sps) if args.eval_interval else 0.0
    iterations = args.total_timesteps // batch
    evaluations = iterations // args.eval_interval if args.eval_interval else 0
    hours = (iterations * batch / sps + evaluations * evaluation) / 3600
    return {"command": "python " + " ".join(command), "machine": cpu_name(), "cores": CORES,
            "date": datetime.date.today().isoformat(), "env_steps_per_s": sps, "evaluation_s": round(evaluation),
            "preset_steps": iterations * batch, "preset_hours": round(hours, 1), "peak_memory_gb": round(peak, 2)}


def main() -> None:
    if sys.argv[1:2] in (["-h"], ["--help"]):
        sys.exit(print(__doc__))
    command = sys.argv[1:] or HEADLINE
    if not command[0].endswith(".py") or not (REPO / command[0]).is_file():
        sys.exit(f"error: {command[0]} is not one of the scripts; give a command such as {' '.join(HEADLINE)}")
    row = measure(command)
    rows = [r for r in csv.DictReader(CSV.open())] if CSV.exists() else []
    rows = [r for r in rows if r["command"] != row["command"]] + [row]  # a command's newest measurement
    with CSV.open("w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    print(", ".join(f"{k} {v}" for k, v in row.items()))
    print(f"wrote {CSV.relative_to(REPO)}; `python benchmarks/tables.py` puts it on the pages")


if __name__ == "__main__":
    main()
