"""How trained spread policies end their episodes: how many landmarks are left uncovered.

    python benchmarks/spread_coverage.py sweeps/mpe/mpe_spread__happo__*/runs/*/happo.cleanrl_model

For each checkpoint (`--save-model`, or a sweep's final checkpoint) of an on-policy script on
`mpe_spread` or `mpe_spread_continuous`: the deterministic policy plays `--episodes` episodes
on the batched simulator; printed are the mean return and the share of episodes ending with
0, 1, 2 or 3 landmarks that no agent is within `--radius` of at the last step. A seed that
settles with two agents on one landmark shows as most episodes with one landmark uncovered.
"""

import argparse
import importlib
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common.batched_spread import BatchedSpread  # noqa: E402
from common.config import fail  # noqa: E402
from common.tokens import obs_layouts  # noqa: E402

SCRIPTS = ("happo", "happo_rga", "mappo", "haa2c", "hatrpo")


def load_actors(ckpt: dict, env: BatchedSpread):
    """The checkpoint's actors, rebuilt with its script's own Actor class."""
    module = importlib.import_module(ckpt["algo"])
    args = module.Args(**ckpt["args"])
    if ckpt["algo"] == "happo_rga":
        actors = [module.Actor(spec, args.hidden_sizes, layout, args)
                  for spec, layout in zip(env.agents, obs_layouts(ckpt["env"]))]
    else:
        actors = [module.Actor(spec, args.hidden_sizes) for spec in env.agents]
    for actor, state in zip(actors, ckpt["actors"]):
        actor.load_state_dict(state)
    return module, actors


def uncovered(agents: np.ndarray, landmarks: np.ndarray, radius: float) -> np.ndarray:
    """Per episode, the number of landmarks with no agent within `radius`: agents (E, N, 2),
    landmarks (E, L, 2) -> (E,)."""
    distance = np.linalg.norm(agents[:, :, None] - landmarks[:, None], axis=-1)  # (episode, agent, landmark)
    return (distance.min(1) > radius).sum(1)


@torch.inference_mode()
def coverage(path: str, episodes: int, radius: float, seed: int) -> tuple[float, np.ndarray]:
    """Mean return and the share of episodes ending with k = 0..N landmarks uncovered."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a missing file, or not a checkpoint
        fail(f"cannot read {path} as a checkpoint ({type(err).__name__}); give the "
             f"`.cleanrl_model` files that --save-model writes")
    if not isinstance(ckpt, dict) or ckpt.get("algo") not in SCRIPTS or ckpt.get("env") not in ("mpe_spread", "mpe_spread_continuous"):
        fail(f"{path} is a {ckpt.get('algo')} checkpoint for {ckpt.get('env')}; valid: "
             f"{', '.join(SCRIPTS)} on mpe_spread or mpe_spread_continuous")
    env = BatchedSpread(episodes, continuous=ckpt["env"] == "mpe_spread_continuous")
    module, actors = load_actors(ckpt, env)
    obs, _ = env.reset(seed=seed)
    returns = np.zeros(episodes)
    for t in range(env.max_cycles):
        if t == env.max_cycles - 1:  # the last step's positions, before the envs reset
            agents, landmarks = env.pos[:, : env.N].copy(), env.pos[:, env.N:].copy()
        action, _ = module.joint_act(actors, torch.as_tensor(obs), [env.agent_obs_dim] * env.N, deterministic=True)
        obs, _, reward, *_ = env.step(action.numpy())
        returns += reward  # the team reward
    counts = uncovered(agents, landmarks, radius)
    return float(returns.mean()), np.bincount(counts, minlength=env.N + 1) / episodes


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--radius", type=float, default=0.2, help="a landmark is covered by an agent this close")
    parser.add_argument("--seed", type=int, default=123)
    opts = parser.parse_args()
    torch.set_num_threads(1)
    print("| checkpoint | return | landmarks uncovered at the end: 0 / 1 / 2 / 3 |\n|---|---:|---|")
    for path in opts.checkpoints:
        mean_return, shares = coverage(path, opts.episodes, opts.radius, opts.seed)
        print(f"| {path} | {mean_return:.1f} | {' / '.join(f'{s:.0%}' for s in shares)} |")
