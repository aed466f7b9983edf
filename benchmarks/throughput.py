"""Env-steps/s of MPE Spread: the raw simulators and HAPPO training on each backend, one table.

    python benchmarks/throughput.py                  # about 3 minutes on 2 cores
    python benchmarks/throughput.py --train-steps 400000

An env-step is one step of one environment (all agents act), as `--total-timesteps` counts.
Training figures are the SPS that happo.py itself reports at its last iteration (setup and
imports excluded), for the paper preset (20 envs x 200 steps, 5 epochs, 1 minibatch).
"""

import argparse
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


def raw_env_speed(backend: str, num_envs: int, num_workers: int = 0, seconds: float = 3.0) -> float:
    envs = make_vec_env("mpe_spread", num_envs, num_workers, backend)
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 5, (64, num_envs, len(envs.agents))).astype(np.float32)
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        envs.step(actions[steps % 64])
        steps += 1
    rate = steps * num_envs / (time.perf_counter() - start)
    envs.close()
    return rate


def training_speed(backend: str, total_steps: int, extra: list[str]) -> float:
    cmd = [sys.executable, str(REPO / "happo.py"), "--env", "mpe_spread", "--env-backend", backend,
           "--total-timesteps", str(total_steps), "--eval-interval", "0", "--log-interval", "1", *extra]
    out = subprocess.run(cmd, cwd=os.environ.get("TMPDIR", "/tmp"), capture_output=True, text=True, check=True)
    return float(re.findall(r"SPS (\d+)", out.stdout)[-1])


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
    parser.add_argument("--train-steps", type=int, default=200_000, help="env-steps per training run")
    parser.add_argument("--cuda", action="store_true", help="also time training with --cuda")
    opts = parser.parse_args()

    import torch

    print(f"hardware: {cpu_name()}, {os.cpu_count()} cores; python {platform.python_version()}, "
          f"torch {torch.__version__}, numpy {np.__version__}"
          + (f", GPU {torch.cuda.get_device_name()}" if opts.cuda and torch.cuda.is_available() else ""))
    rows = [
        ("raw batched env, 20 envs", raw_env_speed("batched", 20)),
        ("raw batched env, 1000 envs", raw_env_speed("batched", 1000)),
        ("raw mpe2 env, 20 envs, this process", raw_env_speed("pettingzoo", 20)),
        ("raw mpe2 env, 20 envs, 2 worker processes", raw_env_speed("pettingzoo", 20, num_workers=2)),
        ("happo.py training, batched backend", training_speed("batched", opts.train_steps, [])),
        ("happo.py training, pettingzoo backend", training_speed("pettingzoo", opts.train_steps, [])),
    ]
    if opts.cuda:
        rows.append(("happo.py training, batched backend, --cuda",
                     training_speed("batched", opts.train_steps, ["--cuda"])))
    width = max(len(name) for name, _ in rows)
    print(f"| {'what':<{width}} | env-steps/s | x authors (1,100) |")
    print(f"|{'-' * (width + 2)}|------------:|------------------:|")
    for name, rate in rows:
        print(f"| {name:<{width}} | {rate:>11,.0f} | {rate / 1100:>17.1f} |")
