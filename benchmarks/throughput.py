"""Env-steps/s of the raw simulators and of HAPPO training on them, one table.

    python benchmarks/throughput.py                  # MPE Spread, about 3 minutes on 2 cores
    python benchmarks/throughput.py --train-steps 400000
    python benchmarks/throughput.py --script happo.py mappo.py hatd3.py   # each algorithm, alternated
    python benchmarks/throughput.py --env grf_ca_hard   # football, about 20 minutes on 2 cores
    python benchmarks/throughput.py --env grf_ca_hard --script happo.py happo_rga.py   # alternated
    python benchmarks/throughput.py --env grf_ca_hard --num-envs 2 --script happo_rga.py

An env-step is one step of one environment (all agents act), as `--total-timesteps` counts.
Training figures are the SPS that happo.py itself reports at its last iteration (setup and
imports excluded), for the paper preset with evaluation off: MPE 20 envs x 200 steps, 5 epochs,
1 minibatch; football the whole preset (50 envs x 1000 steps, 15 epochs, 2 minibatches, one
iteration) in `--num-workers` worker processes, against the same 50 raw engines in the same
workers stepped with random actions (`--num-envs` changes the 50, `--script` the script; several
scripts alternate with the raw engines, and each row gives the script's collect / update split:
the seconds of the rollout and of the update in its iteration). On MPE, `--script` times each
script's training instead, alternated `--repeats` times, against `happo.py` as the reference;
`hatd3.py` (continuous actions only) trains on the continuous variant of the env.
"""

import argparse
import contextlib
import io
import math
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common.envs import make_vec_env  # noqa: E402


def raw_env_speed(env_id: str, backend: str, num_envs: int, num_workers: int = 0, seconds: float = 3.0) -> float:
    """Random discrete actions, auto-reset included."""
    with contextlib.redirect_stdout(io.StringIO()):  # the env layer's start-up lines, not the table's
        envs = make_vec_env(env_id, num_envs, num_workers, backend)
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = np.stack([rng.integers(0, a.action_dim, (64, num_envs)) for a in envs.agents], -1).astype(np.float32)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        envs.step(actions[steps % 64])
        steps += 1
    rate = steps * num_envs / (time.perf_counter() - start)
    envs.close()
    return rate


def training_run(env_id: str, backend: str, total_steps: int, extra: list[str],
                 script: str = "happo.py") -> tuple[float, float, float]:
    """The SPS the script reports at its last iteration, and the fractions of its training time
    spent collecting (rollout) and updating, from its progress line."""
    cmd = [sys.executable, str(REPO / script), "--env", env_id, "--env-backend", backend,
           "--total-timesteps", str(total_steps), "--eval-interval", "0", "--log-interval", "1", *extra]
    out = subprocess.run(cmd, cwd=os.environ.get("TMPDIR", "/tmp"), capture_output=True, text=True, check=True)
    sps, collect, update = re.findall(r"SPS (\d+)(?: \(collect (\d+)%, update (\d+)%\))?", out.stdout)[-1]
    if not collect:  # a script that does not report its split
        return float(sps), math.nan, math.nan
    return float(sps), int(collect) / 100, int(update) / 100


def training_speed(env_id: str, backend: str, total_steps: int, extra: list[str], script: str = "happo.py") -> float:
    return training_run(env_id, backend, total_steps, extra, script)[0]


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="mpe_spread", choices=["mpe_spread", "grf_ca_hard"])
    parser.add_argument("--train-steps", type=int, help="env-steps per training run "
                        "(default 200,000 for MPE, one iteration of 50,000 for football)")
    parser.add_argument("--num-workers", type=int, default=2, help="football: worker processes")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of the alternated measurements")
    parser.add_argument("--num-envs", type=int, default=50, help="football: engines (the preset's 50)")
    parser.add_argument("--script", nargs="+", help="the training script(s): football, alternated with the raw "
                        "engines (default happo.py); MPE, each timed against happo.py instead of the raw table")
    parser.add_argument("--cuda", action="store_true", help="also time training with --cuda")
    opts = parser.parse_args()

    import torch

    print(f"hardware: {cpu_name()}, {os.cpu_count()} cores; python {platform.python_version()}, "
          f"torch {torch.__version__}, numpy {np.__version__}"
          + (f", GPU {torch.cuda.get_device_name()}" if opts.cuda and torch.cuda.is_available() else ""))
    if opts.env == "grf_ca_hard":
        opts.script = opts.script or ["happo.py"]
        # the engine's speed drifts by 10-30% within minutes on a shared host, so raw and
        # training alternate and each ratio compares neighbours
        w, n = opts.num_workers, opts.num_envs
        train = ["--num-workers", str(w), "--num-envs", str(n)] + (["--cuda"] if opts.cuda else [])
        steps = opts.train_steps or n * 1000  # one iteration of the preset's 1000-step rollouts
        print(f"training: {' '.join(train)}, {steps:,} env-steps, evaluation off")
        cols = "".join(f" {s} env-steps/s (collect s + update s) | x raw |" for s in opts.script)
        ratio = f" {opts.script[1]} / {opts.script[0]} |" if len(opts.script) > 1 else ""
        print(f"| repeat | raw engines, {n} in {w} workers |{cols}{ratio}")
        print("|-------:|------:|" + "------:|------:|" * len(opts.script) + ("------:|" if ratio else ""))
        for repeat in range(1, opts.repeats + 1):
            raw = raw_env_speed(opts.env, "gfootball", n, num_workers=w, seconds=30)
            row, rates = f"| {repeat} | {raw:,.0f} |", []
            for script in opts.script:
                sps, collect, update = training_run(opts.env, "gfootball", steps, train, script)
                seconds = steps / sps  # the iteration's training time, as the script counts SPS
                row += f" {sps:,.0f} ({collect * seconds:.0f} + {update * seconds:.0f}) | {sps / raw:.2f} |"
                rates.append(sps)
            print(row + (f" {rates[1] / rates[0]:.2f} |" if ratio else ""), flush=True)
        sys.exit()

    steps = opts.train_steps or 200_000
    if opts.script:
        scripts = list(dict.fromkeys(["happo.py", *opts.script]))  # the reference first
        envs = {s: opts.env + "_continuous" if s == "hatd3.py" else opts.env for s in scripts}
        print(f"training: the batched backend, {steps:,} env-steps each, evaluation off; SPS at the last iteration")
        print("| repeat | " + " | ".join(f"`{s}` on {envs[s]}" for s in scripts) + " |")
        print("|-------:|" + "------:|" * len(scripts))
        rates = {s: [] for s in scripts}
        for repeat in range(1, opts.repeats + 1):
            for s in scripts:
                rates[s].append(training_speed(envs[s], "batched", steps, [], s))
            print(f"| {repeat} | " + " | ".join(f"{rates[s][-1]:,.0f}" for s in scripts) + " |", flush=True)
        print("| x happo.py, median | " + " | ".join(
            f"{np.median(np.divide(rates[s], rates['happo.py'])):.2f}" for s in scripts) + " |")
        sys.exit()
    rows = [
        ("raw batched env, 20 envs", raw_env_speed(opts.env, "batched", 20)),
        ("raw batched env, 1000 envs", raw_env_speed(opts.env, "batched", 1000)),
        ("raw mpe2 env, 20 envs, this process", raw_env_speed(opts.env, "pettingzoo", 20)),
        ("raw mpe2 env, 20 envs, 2 worker processes", raw_env_speed(opts.env, "pettingzoo", 20, num_workers=2)),
        ("happo.py training, batched backend", training_speed(opts.env, "batched", steps, [])),
        ("happo.py training, pettingzoo backend", training_speed(opts.env, "pettingzoo", steps, [])),
    ]
    if opts.cuda:
        rows.append(("happo.py training, batched backend, --cuda", training_speed(opts.env, "batched", steps, ["--cuda"])))
    width = max(len(name) for name, _ in rows)
    print(f"| {'what':<{width}} | env-steps/s | x authors (1,100) |")
    print(f"|{'-' * (width + 2)}|------------:|------------------:|")
    for name, rate in rows:
        print(f"| {name:<{width}} | {rate:>11,.0f} | {rate / 1100:>17.1f} |")
