"""HATD3: Heterogeneous-Agent Twin Delayed Deep Deterministic policy gradient.

Zhong, Kuba, Feng, Hu, Ji, Yang. "Heterogeneous-Agent Reinforcement Learning", JMLR 2024
(section 3.5.3, Algorithm 7 in appendix G), reproduced as the authors' code (PKU-MARL/HARL) implements
it: the off-policy member of the family, for continuous actions. One deterministic actor per
agent, twin centralised critics Q(s, a^1..a^n) with target networks, a replay buffer, and the
sequential update of the family: each agent in a fresh random order ascends Q1 with the agents
updated before it already playing their NEW actions (HADDPG's objective, equation 14, which HATD3 shares).

    python hatd3.py --env mpe_spread_continuous --seed 1
"""

import os
import signal
import sys
import time
from dataclasses import asdict, dataclass
from datetime import timedelta

from common.checks import load_states, read_checkpoint
from common.config import exit_on_interrupt, fail, parse_args
from common.envs import CORES, WORKER_TIMEOUT, check_backend
from common.runs import Writer, continued_run_dir, random_state, restore_random_state, write_checkpoint

ALGO = "hatd3"


@dataclass
class Args:
    env: str = "mpe_spread_continuous"
    """environment id (see README; continuous actions only); selects the paper's hyperparameters for it"""
    exp_name: str = ALGO
    """name of this experiment (part of the run name)"""
    seed: int = 1
    """seed of torch, numpy and the environments (env k is seeded with seed + k)"""
    torch_deterministic: bool = True
    """if toggled, `torch.backends.cudnn.deterministic=True`"""
    cuda: bool = False
    """if toggled, train on the GPU; without a usable one the run stops at once (exit 2), no CPU fallback"""
    track: bool = False
    """if toggled, also log to Weights and Biases (needs `pip install wandb`)"""
    wandb_project_name: str = "harl-cleanrl"
    """the wandb project name"""
    capture_video: bool = False
    """if toggled, record one deterministic episode per evaluation as `videos/{run_name}/step_{N}.mp4`"""
    save_model: bool = True
    """save a checkpoint at the end of training (`--no-save-model`: only where a run stops early; Ctrl-C and NaN always save one)"""
    checkpoint_interval: int = 0
    """also save the checkpoint every this many iterations (0: never), so that a killed run loses little"""
    resume: str | None = None
    """path of a checkpoint to continue from, with its step count (the replay buffer is not saved:
    a resumed run refills `warmup_steps` transitions with its policy before it trains again)"""
    env_backend: str = "pettingzoo"
    """simulator: `batched` (numpy, all envs at once; mpe_spread ids) or `pettingzoo` (mpe2)"""

    total_timesteps: int = 5_000_000
    """total environment steps (one step of one env counts 1, whatever the number of agents), warm-up included"""
    stop_at: int = 0
    """stop after the iteration that reaches this many env-steps, with a checkpoint that --resume goes on
    from; the schedule (the learning rate's annealing) stays that of --total-timesteps. 0: train to the end"""
    num_envs: int = 20
    """number of parallel training environments"""
    num_workers: int = CORES
    """env worker processes, shared by training and evaluation envs (0: in this process); default: the cores available"""
    worker_timeout: float = WORKER_TIMEOUT
    """seconds an env worker may take to answer (a step, a reset, starting its engines); one that takes longer
    is hung: it is killed and restarted as a failed one, and the interrupted rollout or evaluation starts again"""
    torch_threads: int = 0
    """torch CPU threads; 0: per phase, the cores the env workers leave free (at most 4) while collecting, all cores while updating"""
    train_interval: int = 50
    """vector-env steps collected between two training phases (one iteration)"""
    update_per_train: float = 1.0
    """gradient steps per vector-env step: a training phase takes update_per_train x train_interval steps"""
    warmup_steps: int = 10_000
    """env steps of uniformly random actions at the start; training starts after them"""
    buffer_size: int = 1_000_000
    """replay buffer capacity in transitions (one transition: one step of one env)"""
    batch_size: int = 1000
    """transitions per gradient step, drawn uniformly from the buffer"""
    learning_rate: float = 5e-4
    """actor learning rate (Adam)"""
    critic_learning_rate: float = 1e-3
    """critic learning rate (Adam, both critics)"""
    hidden_sizes: tuple[int, ...] = (128, 128)
    """hidden layer widths of actors and critics"""
    gamma: float = 0.99
    """discount factor"""
    polyak: float = 0.005
    """target networks move this fraction of the way to the online networks per actor update"""
    exploration_noise: float = 0.1
    """std of the Gaussian noise on the rollout's actions, in units of the action box's half-width"""
    policy_noise: float = 0.2
    """std of the target policy smoothing noise, in units of the action box's half-width"""
    noise_clip: float = 0.5
    """the smoothing noise is clipped to +- this, in units of the action box's half-width"""
    policy_frequency: int = 2
    """critic updates per actor update (TD3's policy delay); targets move with the actors"""

    eval_interval: int = 20
    """evaluate every this many iterations (0: never)"""
    eval_episodes: int = 20
    """episodes per evaluation, deterministic policy"""
    num_eval_envs: int = 10
    """environments used for evaluation"""
    log_interval: int = 10
    """print a progress line every this many iterations"""


def check_args(args: Args) -> None:
    """What the ranges of single flags (checked as they are parsed: common/checks.py) leave out."""
    if args.total_timesteps < args.num_envs * args.train_interval:
        fail(f"--total-timesteps {args.total_timesteps} is less than one iteration's "
             f"{args.num_envs * args.train_interval} steps (num-envs x train-interval)")
    if args.buffer_size < args.num_envs:
        fail(f"--buffer-size {args.buffer_size} cannot hold one step of --num-envs {args.num_envs}")
    try:
        check_backend(args.env, args.env_backend)
    except ValueError as err:
        fail(str(err))


if __name__ == "__main__":
    # Parsed and checked before torch and the environments load: bad input fails at once.
    args = parse_args(Args, ALGO)
    check_args(args)
    exit_on_interrupt()  # until training starts; then Ctrl-C saves a checkpoint

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from common.envs import EnvWorkerFailure, make_vec_envs, record_episode  # noqa: E402


def plain_mlp(sizes) -> nn.Sequential:
    """HARL's PlainMLP: Linear layers with ReLU between them, PyTorch's default init, no LayerNorm."""
    layers = []
    for k in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[k], sizes[k + 1]))
        if k < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class Actor(nn.Module):
    """mu^i(o^i): deterministic, tanh output scaled to the action box (HARL's DeterministicPolicy)."""

    def __init__(self, spec, hidden_sizes):
        super().__init__()
        self.net = nn.Sequential(plain_mlp([spec.obs_dim, *hidden_sizes, spec.action_dim]), nn.Tanh())
        self.low, self.high = spec.low, spec.high
        self.scale, self.bias = (spec.high - spec.low) / 2, (spec.high + spec.low) / 2

    def forward(self, obs):
        return self.net(obs) * self.scale + self.bias

    def perturb(self, action, std: float, clip: float | None = None):
        """action + N(0, std) noise (clipped to +-clip) in units of the box's half-width, then
        clipped to the box: exploration (no noise clip) and target policy smoothing (clip)."""
        noise = torch.randn_like(action) * (std * self.scale)
        if clip is not None:
            noise = noise.clamp(-clip * self.scale, clip * self.scale)
        return (action + noise).clamp(self.low, self.high)

    def uniform(self, n: int, device):
        """n uniformly random actions in the box (the warm-up)."""
        return torch.rand((n, self.net[0][-1].out_features), device=device) * (self.high - self.low) + self.low


class QNetwork(nn.Module):
    """Q(s, a^1..a^n): a centralised critic on the global state and the joint action
    (HARL's ContinuousQNet)."""

    def __init__(self, state_dim: int, action_dim: int, hidden_sizes):
        super().__init__()
        self.net = plain_mlp([state_dim + action_dim, *hidden_sizes, 1])

    def forward(self, state, action):
        return self.net(torch.cat([state, action], -1)).squeeze(-1)


class ReplayBuffer:
    """The last `capacity` transitions as tensors on the training device; once full, each new
    row overwrites the oldest. Sampling draws uniformly with replacement."""

    def __init__(self, capacity: int, shapes: dict[str, tuple[int, ...]], device):
        self.data = {k: torch.zeros((capacity, *shape), device=device) for k, shape in shapes.items()}
        self.capacity, self.device = capacity, device
        self.pos, self.size = 0, 0

    def add(self, **rows) -> None:
        n = len(next(iter(rows.values())))
        idx = (self.pos + torch.arange(n, device=self.device)) % self.capacity
        for key, value in rows.items():
            self.data[key][idx] = torch.as_tensor(value, dtype=torch.float32, device=self.device)
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int) -> dict:
        idx = torch.randint(self.size, (batch_size,), device=self.device)
        return {k: v[idx] for k, v in self.data.items()}


class NonFiniteLoss(RuntimeError):
    def __init__(self, name: str, value: float):
        super().__init__(f"{name} is {value}")
        self.name = name


def check_finite(name: str, loss) -> None:
    if not torch.isfinite(loss):
        raise NonFiniteLoss(name, loss.item())


def td_target(reward, terminated, next_q, gamma: float):
    """y = r + gamma (1 - terminated) Q'(s', a'). Only termination cuts the bootstrap: at a
    time-limit truncation s' is the episode's real last state (`use_proper_time_limits`)."""
    return reward + gamma * (1.0 - terminated) * next_q


def train_critic(qfs, qf_targets, target_actors, optimizer, batch, obs_dims, args: Args):
    """Clipped double-Q learning (TD3): both critics regress on the smaller target critic's
    value at the target actors' smoothed next actions; MSE, one Adam step on their sum."""
    with torch.no_grad():
        next_actions = torch.cat([actor.perturb(actor(o), args.policy_noise, args.noise_clip)
                                  for actor, o in zip(target_actors, batch["next_obs"].split(obs_dims, -1))], -1)
        next_q = torch.min(*[qf(batch["next_state"], next_actions) for qf in qf_targets])
        target = td_target(batch["reward"], batch["terminated"], next_q, args.gamma)
    q_loss = sum(F.mse_loss(qf(batch["state"], batch["actions"]), target) for qf in qfs)
    check_finite("q_loss", q_loss)
    optimizer.zero_grad()
    q_loss.backward()
    optimizer.step()
    return q_loss.detach() / len(qfs)


def hatd3_update_actors(actors, optimizers, qf, obs, state, agent_order):
    """Algorithm 7's sequential update: all agents' current actions first; then agent i_m
    maximises Q1(s, a^{i_1:m-1}_new, a^{i_m}, a^{i_m+1:n}_old) over its own action, and its new
    action replaces its old one for the agents after it. The critic is not updated here.
    Returns each agent's loss -mean Q1."""
    with torch.no_grad():
        actions = [actor(o) for actor, o in zip(actors, obs)]
    qf.requires_grad_(False)  # the gradient flows through the critic to the action only
    losses = {}
    for i in agent_order:
        actions[i] = actors[i](obs[i])
        actor_loss = -qf(state, torch.cat(actions, -1)).mean()
        check_finite(f"agent {i} actor_loss", actor_loss)
        optimizers[i].zero_grad()
        actor_loss.backward()
        optimizers[i].step()
        if i != agent_order[-1]:  # the last agent's new action is not needed
            with torch.no_grad():
                actions[i] = actors[i](obs[i])
        losses[i] = actor_loss.detach()
    qf.requires_grad_(True)
    return losses


@torch.no_grad()
def soft_update(target: nn.Module, online: nn.Module, polyak: float) -> None:
    """theta' <- (1 - polyak) theta' + polyak theta."""
    for tp, p in zip(target.parameters(), online.parameters()):
        tp.lerp_(p, polyak)


def real_next(next_obs, next_state, done, info):
    """The obs and state a transition leads to: where an episode ended, its real last ones
    (`info["final_*"]`), not the first of the next episode that the env returned."""
    real_obs, real_state = next_obs.copy(), next_state.copy()
    real_obs[done], real_state[done] = info["final_obs"][done], info["final_state"][done]
    return real_obs, real_state


def joint_act(actors, obs, obs_dims):
    """Every agent acts on its slice of the flat observation; returns the flat joint action."""
    return torch.cat([actor(o) for actor, o in zip(actors, obs.split(obs_dims, -1))], -1)


@torch.inference_mode()
def evaluate(actors, envs, obs_dims, num_episodes: int, device):
    """Deterministic policy (no exploration noise) on separate envs for `num_episodes` episodes,
    split evenly over the envs. Returns the episodes' returns."""
    quota = np.full(envs.num_envs, num_episodes // envs.num_envs)
    quota[: num_episodes % envs.num_envs] += 1
    returns = []
    obs, _ = envs.reset()
    while quota.any():
        action = joint_act(actors, torch.as_tensor(obs, device=device), obs_dims)
        obs, _, _, _, _, info = envs.step(action.cpu().numpy())
        counted = ~np.isnan(info["episode_return"]) & (quota > 0)
        returns.extend(info["episode_return"][counted].tolist())
        quota[counted] -= 1
    return returns


def save_checkpoint(path, nets, optimizers, args, global_step, iteration, num_updates, random):
    """One file with everything `--resume` needs, the replay buffer excepted. Written atomically; a failure (a full disk) is returned, not raised."""
    return write_checkpoint({
        "algo": ALGO, "env": args.env, "args": asdict(args),
        "global_step": global_step, "iteration": iteration, "random": random, "num_updates": num_updates,
        **{name: [m.state_dict() for m in modules] for name, modules in nets.items()},
        **{name: [o.state_dict() for o in opts] for name, opts in optimizers.items()},
    }, path)


if __name__ == "__main__":
    from copy import deepcopy

    ckpt = read_checkpoint(args.resume, ALGO, args.env) if args.resume else None
    # a run resumed from a checkpoint in its run directory goes on writing there (common/runs.py)
    run_dir = continued_run_dir(args.resume) or f"runs/{args.env}__{args.exp_name}__{args.seed}__{int(time.time())}"
    run_name = os.path.basename(run_dir)
    config_table = "\n".join(f"|{key}|{value}|" for key, value in asdict(args).items())
    print(f"{run_name}\n|param|value|\n|-|-|\n{config_table}")
    if args.track:
        import wandb

        wandb.init(project=args.wandb_project_name, sync_tensorboard=True, config=asdict(args),
                   name=run_name, save_code=True)
    # TensorBoard; a failing write (a full disk) costs its scalars, never the run
    writer = Writer(run_dir, purge_step=ckpt["global_step"] + 1 if ckpt else None)
    writer.add_text("hyperparameters", f"|param|value|\n|-|-|\n{config_table}")

    # seeding
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    workers = 0 if args.env_backend == "batched" else args.num_workers
    # torch threads per phase: collecting (rollout, evaluation) gets the cores the env workers
    # leave free, the update, while the workers wait, every core; --torch-threads fixes both
    collect_threads = args.torch_threads or max(1, min(4, CORES - workers))
    update_threads = args.torch_threads or CORES
    torch.set_num_threads(collect_threads)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    # env setup: evaluation envs share the training envs' worker processes
    envs, eval_envs = make_vec_envs(args.env, args.num_envs, args.num_eval_envs if args.eval_interval else 0,
                                    args.num_workers, args.env_backend, args.worker_timeout)
    if eval_envs:
        eval_envs.reset(seed=args.seed + 100_000)  # evaluation episodes never share seeds with training
    num_agents = len(envs.agents)
    obs_dims = [spec.obs_dim for spec in envs.agents]
    act_cols = [spec.act_cols for spec in envs.agents]

    # agent setup: one actor per agent (no parameter sharing), twin critics, a target of each
    actors = [Actor(spec, args.hidden_sizes).to(device) for spec in envs.agents]
    qfs = [QNetwork(envs.state_dim, sum(act_cols), args.hidden_sizes).to(device) for _ in range(2)]
    target_actors, qf_targets = deepcopy(actors), deepcopy(qfs)
    actor_optimizers = [torch.optim.Adam(a.parameters(), lr=args.learning_rate, fused=True) for a in actors]
    critic_optimizer = torch.optim.Adam([p for qf in qfs for p in qf.parameters()], lr=args.critic_learning_rate,
                                        fused=True)
    nets = {"actors": actors, "target_actors": target_actors, "critics": qfs, "target_critics": qf_targets}
    optimizers = {"actor_optimizers": actor_optimizers, "critic_optimizer": [critic_optimizer]}

    # storage: one row per transition of one env
    rb = ReplayBuffer(args.buffer_size, {
        "obs": (sum(obs_dims),), "state": (envs.state_dim,), "actions": (sum(act_cols),), "reward": (),
        "terminated": (), "next_obs": (sum(obs_dims),), "next_state": (envs.state_dim,)}, device)

    global_step, start_iteration, num_updates = 0, 1, 0
    if ckpt is not None:
        load_states(args.resume, [pair for name, modules in {**nets, **optimizers}.items()
                                  for pair in zip(modules, ckpt[name])])
        global_step, start_iteration, num_updates = ckpt["global_step"], ckpt["iteration"] + 1, ckpt["num_updates"]
        print(f"resumed from {args.resume} at step {global_step}; the replay buffer starts empty and "
              f"training waits for {args.warmup_steps} transitions", flush=True)

    E = args.num_envs
    iteration_steps = E * args.train_interval
    num_iterations = args.total_timesteps // iteration_steps
    # --stop-at ends this run early; the schedule stays the whole run's
    last_iteration = min(num_iterations, -(-args.stop_at // iteration_steps)) if args.stop_at else num_iterations
    updates_per_train = max(1, int(args.update_per_train * args.train_interval))
    checkpoint_path = f"{run_dir}/{args.exp_name}.cleanrl_model"
    # a checkpoint's generators and, on the batched simulator, its envs' episodes: the run goes on exactly
    restored = restore_random_state(ckpt.get("random"), envs, eval_envs) if ckpt else None
    next_obs, next_state = restored or envs.reset(seed=args.seed)
    snapshot = random_state(envs, eval_envs)  # as of the last completed iteration
    start_time, start_step = time.time(), global_step
    collect_time = update_time = 0.0
    trained_iteration, trained_step = start_iteration - 1, global_step  # last completed iteration
    episode_returns, eval_return = [], float("nan")
    q_loss, actor_loss = float("nan"), float("nan")
    # Ctrl-C, or a scheduler's SIGTERM, now stops training with a checkpoint (the `except` below).
    # Set explicitly: a process started in the background inherits SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        for iteration in range(start_iteration, last_iteration + 1):
            # As HARL: the first training phase follows the warm-up's transitions (after a resume,
            # as many transitions of the policy).
            learning = rb.size >= max(args.warmup_steps, 1)

            # collection: uniformly random actions during the warm-up, then the policy plus noise
            # (if an env worker fails, it is restarted and the phase collected again from its first step;
            # the transitions already stored stay, as valid as any others off-policy)
            torch.set_num_threads(collect_threads)
            tick = time.time()
            step, phase_step = 0, global_step
            while step < args.train_interval:
                with torch.inference_mode():
                    if global_step < args.warmup_steps:
                        action = torch.cat([actor.uniform(E, device) for actor in actors], -1)
                    else:
                        obs_t = torch.as_tensor(next_obs, device=device).split(obs_dims, -1)
                        action = torch.cat([actor.perturb(actor(o), args.exploration_noise)
                                            for actor, o in zip(actors, obs_t)], -1)
                global_step += E
                obs, state = next_obs, next_state
                try:
                    next_obs, next_state, reward, terminated, truncated, info = envs.step(action.cpu().numpy())
                except EnvWorkerFailure as err:
                    next_obs, next_state = envs.recover(err, phase_step)
                    step, global_step = 0, phase_step
                    continue
                done = terminated | truncated
                real_next_obs, real_next_state = real_next(next_obs, next_state, done, info)
                if done.any():
                    episode_returns.extend(info["episode_return"][done].tolist())
                    writer.add_scalar("charts/episodic_return", info["episode_return"][done].mean(), global_step)
                    writer.add_scalar("charts/episodic_length", info["episode_length"][done].mean(), global_step)
                rb.add(obs=obs, state=state, actions=action, reward=reward, terminated=terminated,
                       next_obs=real_next_obs, next_state=real_next_state)
                step += 1
            collect_time += time.time() - tick

            torch.set_num_threads(update_threads)
            # training: critics every gradient step; actors, then all targets, every
            # `policy_frequency` steps, each actor in a fresh random order
            tick = time.time()
            if learning:
                q_losses, actor_losses = [], []
                for _ in range(updates_per_train):
                    num_updates += 1
                    batch = rb.sample(args.batch_size)
                    q_losses.append(train_critic(qfs, qf_targets, target_actors, critic_optimizer, batch,
                                                 obs_dims, args))
                    if num_updates % args.policy_frequency == 0:
                        agent_order = torch.randperm(num_agents).tolist()
                        losses = hatd3_update_actors(actors, actor_optimizers, qfs[0],
                                                     batch["obs"].split(obs_dims, -1), batch["state"], agent_order)
                        actor_losses.extend(losses.values())
                        for target, online in zip(target_actors + qf_targets, actors + qfs):
                            soft_update(target, online, args.polyak)
                q_loss = torch.stack(q_losses).mean().item()
                actor_loss = torch.stack(actor_losses).mean().item() if actor_losses else float("nan")
                writer.add_scalar("losses/q_loss", q_loss, global_step)
                writer.add_scalar("losses/actor_loss", actor_loss, global_step)
            update_time += time.time() - tick
            trained_iteration, trained_step = iteration, global_step

            # logging
            sps = int((global_step - start_step) / (time.time() - start_time))
            writer.add_scalar("charts/SPS", sps, global_step)

            if args.eval_interval and (iteration % args.eval_interval == 0 or iteration == last_iteration):
                torch.set_num_threads(collect_threads)
                eval_returns = None
                while eval_returns is None:  # an env worker's failure: restarted (training envs reset), again
                    try:
                        eval_returns = evaluate(actors, eval_envs, obs_dims, args.eval_episodes, device)
                    except EnvWorkerFailure as err:
                        next_obs, next_state = envs.recover(err, global_step)
                eval_return = float(np.mean(eval_returns))
                writer.add_scalar("eval/episodic_return", eval_return, global_step)
                if args.capture_video:
                    def policy(o):
                        with torch.no_grad():
                            return joint_act(actors, torch.as_tensor(o, device=device), obs_dims).cpu().numpy()
                    record_episode(args.env, policy, args.seed + iteration, f"videos/{run_name}/step_{global_step}.mp4")

            # the iteration is over: what a checkpoint saves is now complete
            snapshot = random_state(envs, eval_envs)
            if args.checkpoint_interval and iteration % args.checkpoint_interval == 0:
                saved = save_checkpoint(checkpoint_path, nets, optimizers, args, global_step, iteration, num_updates,
                                        snapshot)
                if not saved.ok:  # this checkpoint only is lost; the next interval tries again
                    print(f"warning: {saved}; training goes on", file=sys.stderr, flush=True)

            if iteration % args.log_interval == 0 or iteration == last_iteration:
                elapsed = time.time() - start_time
                left = elapsed / (global_step - start_step) * (last_iteration * iteration_steps - global_step)
                train_return = np.mean(episode_returns) if episode_returns else float("nan")
                busy = collect_time + update_time
                print(f"iter {iteration}/{num_iterations} step {global_step} return {train_return:.2f} "
                      f"eval {eval_return:.2f} q_loss {q_loss:.4f} actor_loss {actor_loss:.4f} SPS {sps} "
                      f"(collect {collect_time / busy:.0%}, update {update_time / busy:.0%}) "
                      f"elapsed {timedelta(seconds=round(elapsed))} left {timedelta(seconds=round(left))}", flush=True)
                episode_returns = []
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C (or SIGTERM) must not break the save
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        envs.close()  # workers first: one may be mid-step
        if trained_iteration < start_iteration:  # no iteration in this run: nothing new to save
            print("\ninterrupted before the first iteration of this run ended; no checkpoint", flush=True)
            sys.exit(130)
        saved = save_checkpoint(checkpoint_path, nets, optimizers, args, trained_step, trained_iteration, num_updates,
                                snapshot)
        print(f"\ninterrupted after iteration {trained_iteration}, step {trained_step}; {saved}", flush=True)
        sys.exit(130)
    except NonFiniteLoss as err:
        saved = save_checkpoint(checkpoint_path, nets, optimizers, args, trained_step, trained_iteration, num_updates,
                                snapshot)
        print(f"error: non-finite loss at iteration {trained_iteration + 1}: {err}; {saved} "
              f"(as of the last finite gradient step)", file=sys.stderr)
        envs.close()
        sys.exit(1)
    except EnvWorkerFailure as err:  # failures in a row (common/envs.py: MAX_FAILURES), a lasting fault
        saved = save_checkpoint(checkpoint_path, nets, optimizers, args, trained_step, trained_iteration, num_updates,
                                snapshot)
        print(f"error: {err}; {saved} (of the last iteration)", file=sys.stderr)
        envs.close()
        sys.exit(1)

    if args.save_model or last_iteration < num_iterations:  # a stopped run goes on from its checkpoint
        saved = save_checkpoint(checkpoint_path, nets, optimizers, args, trained_step, trained_iteration, num_updates,
                                snapshot)
        if not saved.ok:  # the run's training since its last checkpoint would be lost: say so
            print(f"error: {saved}", file=sys.stderr, flush=True)
            envs.close()
            writer.close()
            sys.exit(1)
        print(saved)
    if last_iteration < num_iterations:
        print(f"stopped at step {trained_step} (--stop-at {args.stop_at}); --resume the checkpoint to go on")
    envs.close()
    if eval_envs:
        eval_envs.close()
    writer.close()
