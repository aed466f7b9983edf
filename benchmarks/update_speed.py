"""The seconds of one training update (no environment) of HAPPO and HAPPO-RGA at a preset's batch,
on the CPU and, with --cuda, on the GPU: the part of an iteration that a GPU can speed up.

    python benchmarks/update_speed.py                          # grf_ca_hard's batch, CPU
    python benchmarks/update_speed.py --cuda                   # also on the GPU, in the same run
    python benchmarks/update_speed.py --env grf_ca_easy --repeats 5

The update is what the scripts run after a rollout, with their own functions and the preset's
settings (grf_ca_hard: 50 envs x 1000 steps, 15 epochs, 2 minibatches): the critic's values of
the rollout, GAE, the sequential actor updates (`happo_update_actors`) and the critic's
(`train_critic`). The rollout is synthetic, of the env's shapes (observations and states drawn
from a standard normal, random actions, sparse rewards, an episode end every 400 steps), so no
football engine is needed: a machine with PyTorch alone runs it. The scripts are imported, not
run: tyro, TensorBoard and the envs' packages are not needed. Each row is the median of
`--repeats` updates after one untimed warm-up; the scripts and devices alternate.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from common.config import PRESETS  # noqa: E402
from common.envs import CORES, GRF_ENVS, AgentSpec  # noqa: E402
from common.tokens import obs_layouts, state_layout  # noqa: E402

SCRIPTS = ("happo", "happo_rga")


def football_rollout(env: str, num_steps: int, num_envs: int, generator: torch.Generator):
    """Synthetic rollout buffers of a football env's shapes, on the CPU."""
    n = GRF_ENVS[env][1]
    T, E = num_steps, num_envs
    return dict(
        specs=[AgentSpec(obs_dim=115, discrete=True, action_dim=19)] * n,
        obs=torch.randn(T, E, 115 * n, generator=generator),
        states=torch.randn(T + 1, E, 115 + (n - 1) * 11, generator=generator),
        actions=torch.randint(0, 19, (T, E, n), generator=generator).float(),
        rewards=(torch.rand(T, E, generator=generator) < 0.01).float(),
        dones=(torch.arange(1, T + 1) % 400 == 0).float()[:, None].expand(T, E).contiguous(),
        truncated=torch.zeros(T, E),
    )


def build(name: str, env: str, rollout: dict, device: torch.device):
    """The script's networks and optimisers as its main block builds them, and its args."""
    script = importlib.import_module(name)
    fields = {f.name for f in dataclasses.fields(script.Args)}
    args = script.Args(env=env, **{k: v for k, v in PRESETS[name][env].items() if k in fields})
    specs = rollout["specs"]
    if name == "happo_rga":
        actors = [script.Actor(s, args.hidden_sizes, layout, args) for s, layout in zip(specs, obs_layouts(env))]
        critic = script.Critic(rollout["states"].shape[-1], args.hidden_sizes, state_layout(env), args)
    else:
        actors = [script.Actor(s, args.hidden_sizes) for s in specs]
        critic = script.Critic(rollout["states"].shape[-1], args.hidden_sizes)
    actors, critic = [a.to(device) for a in actors], critic.to(device)
    value_norm = script.ValueNorm().to(device)
    actor_optimizers = [torch.optim.Adam(a.parameters(), lr=args.learning_rate, eps=1e-5, fused=True) for a in actors]
    critic_optimizer = torch.optim.Adam(critic.parameters(), lr=args.critic_learning_rate, eps=1e-5, fused=True)
    return script, args, actors, critic, value_norm, actor_optimizers, critic_optimizer


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def update_seconds(name: str, env: str, rollout: dict, device: torch.device, seed: int = 1) -> float:
    """One update as the script's main block runs it (the values pass, GAE, the actors, the critic)."""
    torch.manual_seed(seed)
    script, args, actors, critic, value_norm, actor_optimizers, critic_optimizer = build(name, env, rollout, device)
    T, E, n = rollout["actions"].shape
    batch_size = T * E
    obs_dims = [s.obs_dim for s in rollout["specs"]]
    data = {k: v.to(device) for k, v in rollout.items() if k != "specs"}
    with torch.no_grad():  # the rollout's log-probs, from the actors that will be updated
        flat_obs = data["obs"].reshape(batch_size, -1).split(obs_dims, -1)
        flat_actions = data["actions"].reshape(batch_size, n, 1).unbind(1)
        old_logp = [a.evaluate(o, act)[0] for a, o, act in zip(actors, flat_obs, flat_actions)]
    sync(device)
    tick = time.perf_counter()
    with torch.no_grad():
        values = critic(data["states"])
        advantages, returns = script.compute_gae(
            data["rewards"], value_norm.denormalize(values[:-1]), value_norm.denormalize(values[-1]),
            data["dones"], data["truncated"], args.gamma, args.gae_lambda)
    b_advantages = advantages.reshape(-1)
    b_advantages = (b_advantages - b_advantages.mean()) / (b_advantages.std(correction=0) + 1e-5)
    agent_order = torch.randperm(n).tolist()
    script.happo_update_actors(actors, actor_optimizers, flat_obs, flat_actions, old_logp, b_advantages,
                               agent_order, args)
    script.train_critic(critic, critic_optimizer, value_norm, data["states"][:-1].reshape(batch_size, -1),
                        values[:-1].reshape(-1), returns.reshape(-1), args)
    sync(device)
    return time.perf_counter() - tick


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="grf_ca_hard", choices=tuple(GRF_ENVS))
    parser.add_argument("--scripts", nargs="+", default=list(SCRIPTS), choices=SCRIPTS)
    parser.add_argument("--cuda", action="store_true", help="also time the update on the GPU")
    parser.add_argument("--repeats", type=int, default=3, help="timed updates per script and device")
    parser.add_argument("--threads", type=int, default=CORES, help="torch threads on the CPU (default: the cores)")
    parser.add_argument("--num-envs", type=int, help="instead of the preset's (a smaller batch for a quick check)")
    parser.add_argument("--num-steps", type=int, help="instead of the preset's")
    opts = parser.parse_args(argv)
    if opts.cuda and not torch.cuda.is_available():
        sys.exit("error: --cuda: no GPU is visible to PyTorch here")
    preset = PRESETS["happo"][opts.env]
    num_envs, num_steps = opts.num_envs or preset["num_envs"], opts.num_steps or preset["num_steps"]
    torch.set_num_threads(opts.threads)
    rollout = football_rollout(opts.env, num_steps, num_envs, torch.Generator().manual_seed(0))
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if opts.cuda else [])

    def label(device):
        return (f"GPU {torch.cuda.get_device_name()}" if device.type == "cuda"
                else f"CPU {cpu_name()}, torch threads: {opts.threads}")

    print(f"{opts.env}: {num_envs} envs x {num_steps} steps = {num_envs * num_steps:,} samples, "
          f"{preset['update_epochs']} epochs, {preset['num_minibatches']} minibatches; torch {torch.__version__}")
    times = {(name, d.type): [] for name in opts.scripts for d in devices}
    for name in opts.scripts:  # warm-up: imports, kernels, allocator
        for device in devices:
            update_seconds(name, opts.env, rollout, device)
    for _ in range(opts.repeats):
        for name in opts.scripts:
            for device in devices:
                times[name, device.type].append(update_seconds(name, opts.env, rollout, device))
    print("| script | device | update s (median) | each |")
    print("|---|---|---:|---|")
    for (name, kind), seconds in times.items():
        device = next(d for d in devices if d.type == kind)
        print(f"| `{name}.py` | {label(device)} | {statistics.median(seconds):.2f} | "
              f"{', '.join(f'{s:.2f}' for s in seconds)} |", flush=True)


if __name__ == "__main__":
    main()
