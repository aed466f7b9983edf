"""Evaluate a saved checkpoint (of any script) with its deterministic policy, and optionally record
one episode as an MP4 video.

    python benchmarks/evaluate.py results/checkpoints/grf_ca_easy/happo/seed1.cleanrl_model
    python benchmarks/evaluate.py results/checkpoints/grf_ca_easy/happo/seed1.cleanrl_model --sampled
    python benchmarks/evaluate.py runs/<run>/happo.cleanrl_model --episodes 20 --video happo.mp4

The checkpoint names its script, env and flags: the actors are rebuilt with the script's own
classes and evaluated with its own `evaluate` (the same deterministic policy and episode split
as the training run's evaluation), on `--num-envs` fresh envs seeded from `--seed`. It prints one
line: the mean return and length of the episodes; on football also the score rate and how the
episodes ended (a goal, the time limit, or the ball out of play or lost). `--sampled` draws the
actions from the policy, as training does, instead of taking its mode: the gap between the two
score rates tells a policy that scores only by chance from one whose mode scores.
`--video` plays one more episode (seed `--seed`) and writes a frame of its first state and one
after each step; on football the engine renders off-screen in software, at about 2 steps/s.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common.checks import check_checkpoint_file, load_states, read_checkpoint  # noqa: E402
from common.config import fail  # noqa: E402
from common.envs import CORES  # noqa: E402

import numpy as np  # noqa: E402


def build_actors(module, args, agents):
    """The script's actors for these agents, as its training run builds them."""
    if module.ALGO == "happo_rga":
        from common.tokens import obs_layouts

        return [module.Actor(spec, args.hidden_sizes, layout, args) for spec, layout in zip(agents, obs_layouts(args.env))]
    return [module.Actor(spec, args.hidden_sizes) for spec in agents]


def deterministic_policy(module, actors, obs_dims):
    """obs (1, ...) numpy -> flat actions (1, ...) numpy, the mode of each actor (HATD3: no noise)."""
    import torch

    def policy(obs):
        with torch.no_grad():
            obs_t = torch.as_tensor(obs)
            if module.ALGO == "hatd3":
                return module.joint_act(actors, obs_t, obs_dims).numpy()
            return module.joint_act(actors, obs_t, obs_dims, deterministic=True)[0].numpy()

    return policy


# gfootball's academy scenarios: `game_duration` 400 frames; an episode that reaches it ends there.
GRF_TIME_LIMIT = 400


class EpisodeLengths:
    """The vector env, also keeping each env's finished episodes' lengths in order. `evaluate`
    counts the first episodes of each env (its quota), so those are the first lengths here."""

    def __init__(self, envs):
        self.envs, self.lengths = envs, [[] for _ in range(envs.num_envs)]

    def __getattr__(self, name):
        return getattr(self.envs, name)

    def step(self, action):
        out = self.envs.step(action)
        info = out[-1]
        for k in np.flatnonzero(~np.isnan(info["episode_return"])):
            self.lengths[k].append(int(info["episode_length"][k]))
        return out

    def counted(self, num_episodes: int) -> list[int]:
        """The lengths of the episodes `evaluate` counted, as its quota splits them."""
        n = self.envs.num_envs
        return [length for k in range(n) for length in self.lengths[k][: num_episodes // n + (k < num_episodes % n)]]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="a .cleanrl_model file (--save-model, --checkpoint-interval, Ctrl-C)")
    parser.add_argument("--episodes", type=int, default=100, help="evaluation episodes (the authors' 100)")
    parser.add_argument("--num-envs", type=int, default=10, help="envs the episodes are split over")
    parser.add_argument("--num-workers", type=int, default=CORES, help="env worker processes (0: in this process)")
    parser.add_argument("--seed", type=int, default=100_000, help="env k is seeded with seed + k")
    parser.add_argument("--sampled", action="store_true",
                        help="sample the actions from the policy (as training does) instead of taking its mode")
    parser.add_argument("--video", help="also record one episode to this .mp4 file")
    opts = parser.parse_args(argv)
    for flag, value, low in (("--episodes", opts.episodes, 1), ("--num-envs", opts.num_envs, 1),
                             ("--num-workers", opts.num_workers, 0), ("--seed", opts.seed, 0)):
        if value < low:
            fail(f"{flag} {value} is out of range; it must be >= {low}")
    if opts.video is not None and not opts.video.endswith(".mp4"):
        fail(f"--video {opts.video}: give a file name ending in .mp4")
    check_checkpoint_file(opts.checkpoint, "checkpoint")

    import torch

    from common.envs import make_vec_env, record_episode

    torch.set_num_threads(max(1, CORES - opts.num_workers))
    ckpt = read_checkpoint(opts.checkpoint, None, None, "checkpoint")
    if opts.sampled and ckpt["algo"] == "hatd3":
        fail("--sampled: hatd3's policy is deterministic (its exploration noise is for training only)")
    module = importlib.import_module(ckpt["algo"])  # the script that wrote it
    known = {f.name for f in dataclasses.fields(module.Args)}
    args = module.Args(**{k: v for k, v in ckpt["args"].items() if k in known})
    envs = EpisodeLengths(make_vec_env(args.env, opts.num_envs, opts.num_workers, args.env_backend))
    try:
        obs_dims = [spec.obs_dim for spec in envs.agents]
        actors = build_actors(module, args, envs.agents)
        load_states(opts.checkpoint, zip(actors, ckpt["actors"]), "checkpoint")
        envs.reset(seed=opts.seed)
        sampled = {"deterministic": False} if opts.sampled else {}  # hatd3's evaluate has no such argument
        result = module.evaluate(actors, envs, obs_dims, opts.episodes, torch.device("cpu"), **sampled)
    finally:
        envs.close()
    returns, scores = result if isinstance(result, tuple) else (result, [])
    lengths = np.array(envs.counted(opts.episodes))
    line = (f"{ckpt['algo']} on {ckpt['env']} at step {ckpt['global_step']:,}: return {np.mean(returns):.3f} "
            f"(std {np.std(returns):.3f}) over {len(returns)} {'sampled' if opts.sampled else 'deterministic'} "
            f"episodes of {lengths.mean():.0f} steps on average")
    if scores:
        scored, timed_out = np.array(scores) > 0, lengths >= GRF_TIME_LIMIT
        line += (f", score rate {scored.mean():.3f}; ended by a goal {scored.mean():.0%}, by the time limit "
                 f"{(timed_out & ~scored).mean():.0%}, by the ball out of play or lost {(~timed_out & ~scored).mean():.0%}")
    print(line, flush=True)
    if opts.video:
        steps, scored = record_episode(args.env, deterministic_policy(module, actors, obs_dims), opts.seed, opts.video)
        ending = "" if scored is None else ", a goal" if scored else ", no goal"
        print(f"video of one episode ({steps} steps{ending}) written to {opts.video}")


if __name__ == "__main__":
    main()
