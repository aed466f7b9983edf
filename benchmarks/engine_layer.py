"""CPU time per football step through gfootball's own FootballEnv and through the lean layer the
scripts use (common/gfootball_lean.py), alternated in one process.

    python benchmarks/engine_layer.py                  # grf_ca_hard, 5 pairs of 1,000 steps
    python benchmarks/engine_layer.py --env grf_ps --steps 2000 --repeats 3

Each repeat steps one engine of each kind with the same seeded random actions (auto-reset
included) and reports steps per CPU-second of this process, which a busy machine disturbs less
than wall time; the ratio is lean over gfootball's, pair by pair. The two engines play different
episodes (the engine is not bit-reproducible), so each measurement is over 1,000s of steps.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common.envs import GRF_ENVS, FootballEnv  # noqa: E402


def steps_per_cpu_second(env: FootballEnv, steps: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    actions = rng.integers(0, 19, (steps, len(env.agents))).astype(np.float32)
    env.reset(seed=seed)
    start = time.process_time()
    for action in actions:
        if env.step(action)[3]:
            env.reset()
    return steps / (time.process_time() - start)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="grf_ca_hard", choices=sorted(GRF_ENVS))
    parser.add_argument("--steps", type=int, default=1000, help="steps per measurement")
    parser.add_argument("--repeats", type=int, default=5, help="alternated pairs")
    opts = parser.parse_args()

    from gfootball.env import football_env

    lean = FootballEnv(opts.env)
    plain = FootballEnv(opts.env)
    plain.env.unwrapped.__class__ = football_env.FootballEnv  # undo common.gfootball_lean.lean
    print(f"{opts.env}, {opts.steps:,} steps per measurement, steps per CPU-second")
    print("| repeat | gfootball's FootballEnv | lean | lean / gfootball's |")
    print("|---:|---:|---:|---:|")
    ratios = []
    for repeat in range(1, opts.repeats + 1):
        theirs = steps_per_cpu_second(plain, opts.steps, repeat)
        ours = steps_per_cpu_second(lean, opts.steps, repeat)
        ratios.append(ours / theirs)
        print(f"| {repeat} | {theirs:.1f} | {ours:.1f} | {ratios[-1]:.2f} |", flush=True)
    print(f"| median | | | {np.median(ratios):.2f} |")
