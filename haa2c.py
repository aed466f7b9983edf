"""HAA2C: Heterogeneous-Agent Advantage Actor-Critic.

Zhong, Kuba, Feng, Hu, Ji, Yang. "Heterogeneous-Agent Reinforcement Learning", JMLR 2024
(section 3.5, appendix G, Algorithm 5), reproduced as the authors' code (PKU-MARL/HARL)
implements it: HAPPO (happo.py) with the clip taken out. Each agent, in a fresh random order,
takes `update_epochs` gradient steps on the unclipped factor-weighted objective
-(M * ratio * A), M being the ratios of the agents updated before it.

    python haa2c.py --env mpe_spread --seed 1
"""

import math
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass
from datetime import timedelta

from common.checks import load_states, read_checkpoint
from common.config import check_divides, exit_on_interrupt, fail, parse_args
from common.envs import CORES, WORKER_TIMEOUT, check_backend, check_memory
from common.runs import Writer, continued_run_dir, random_state, restore_random_state, write_checkpoint

ALGO = "haa2c"


@dataclass
class Args:
    env: str = "mpe_spread"
    """environment id (see README); selects the paper's hyperparameters for it"""
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
    """path of a checkpoint to continue from, with its step count"""
    env_backend: str = "pettingzoo"
    """simulator: `batched` (numpy, all envs at once; mpe_spread ids), `pettingzoo` (mpe2; MPE ids)
    or `gfootball` (the football engine; grf ids)"""

    total_timesteps: int = 10_000_000
    """total environment steps (one step of one env counts 1, whatever the number of agents)"""
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
    num_steps: int = 200
    """rollout length per environment and iteration"""
    learning_rate: float = 5e-4
    """actor learning rate (Adam, eps 1e-5)"""
    critic_learning_rate: float = 5e-4
    """critic learning rate (Adam, eps 1e-5)"""
    anneal_lr: bool = False
    """if toggled, both learning rates decay linearly to 0"""
    update_epochs: int = 5
    """passes over the batch per iteration, for each actor (`a2c_epoch`) and for the critic"""
    num_minibatches: int = 1
    """minibatches per pass, for each actor and for the critic"""
    hidden_sizes: tuple[int, ...] = (128, 128)
    """hidden layer widths of actors and critic"""
    gamma: float = 0.99
    """discount factor"""
    gae_lambda: float = 0.95
    """lambda of generalised advantage estimation"""
    clip_coef: float = 0.2
    """clip range of the value change (the actors' objective is unclipped)"""
    ent_coef: float = 0.01
    """entropy bonus coefficient"""
    vf_coef: float = 1.0
    """value loss coefficient"""
    max_grad_norm: float = 10.0
    """gradient norm clip of actors and critic"""
    huber_delta: float = 10.0
    """delta of the Huber value loss"""

    eval_interval: int = 25
    """evaluate every this many iterations (0: never)"""
    eval_episodes: int = 20
    """episodes per evaluation, deterministic policy"""
    num_eval_envs: int = 10
    """environments used for evaluation"""
    log_interval: int = 5
    """print a progress line every this many iterations"""


def check_args(args: Args) -> None:
    """What the ranges of single flags (checked as they are parsed: common/checks.py) leave out."""
    check_divides(args.num_envs * args.num_steps, args.num_minibatches)
    if args.total_timesteps < args.num_envs * args.num_steps:
        fail(f"--total-timesteps {args.total_timesteps} is less than one iteration's batch of "
             f"{args.num_envs * args.num_steps} (num-envs x num-steps)")
    try:
        check_backend(args.env, args.env_backend)
    except ValueError as err:
        fail(str(err))
    try:
        check_memory(args.env, args.num_envs, args.num_eval_envs if args.eval_interval else 0,
                     args.num_workers, args.num_steps)
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
from torch.distributions import Categorical, Normal  # noqa: E402

from common.envs import EnvWorkerFailure, make_vec_envs, record_episode  # noqa: E402


def layer_init(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.constant_(layer.bias, 0.0)
    return layer


def mlp(in_dim: int, hidden_sizes) -> nn.Sequential:
    """HARL's MLPBase: LayerNorm on the input features, then [Linear, ReLU, LayerNorm] per layer."""
    layers = [nn.LayerNorm(in_dim)]
    for size in hidden_sizes:
        layers += [layer_init(nn.Linear(in_dim, size), nn.init.calculate_gain("relu")),
                   nn.ReLU(), nn.LayerNorm(size)]
        in_dim = size
    return nn.Sequential(*layers)


class Actor(nn.Module):
    """pi^i(a^i | o^i): categorical for discrete actions; Gaussian with a state-independent
    std = 0.5 * sigmoid(log_std) for continuous ones (HARL's DiagGaussian, std starts at 0.366)."""

    def __init__(self, spec, hidden_sizes):
        super().__init__()
        self.discrete = spec.discrete
        self.body = mlp(spec.obs_dim, hidden_sizes)
        self.head = layer_init(nn.Linear(hidden_sizes[-1], spec.action_dim), gain=0.01)
        if not self.discrete:
            self.log_std = nn.Parameter(torch.ones(spec.action_dim))

    def std(self):
        return 0.5 * torch.sigmoid(self.log_std)

    def dist(self, obs):
        out = self.head(self.body(obs))
        if self.discrete:
            return Categorical(logits=out, validate_args=False)
        return Normal(out, self.std(), validate_args=False)

    def act(self, obs, deterministic: bool = False):
        """Actions as float columns (a discrete index in one column) and their log-probs.
        Sampled by hand rather than through `dist`: the rollout calls this every step, and at
        its small batches the distribution objects cost more than the network."""
        out = self.head(self.body(obs))
        if self.discrete:
            logp_all = out.log_softmax(-1)
            # Gumbel-max: argmax(log p + Gumbel noise) is a sample of p (cheaper than multinomial)
            noise = 0.0 if deterministic else -torch.empty_like(logp_all).exponential_().log()
            action = (logp_all + noise).argmax(-1, keepdim=True)
            return action.float(), logp_all.gather(-1, action).squeeze(-1)
        std = self.std()
        action = out if deterministic else out + std * torch.randn_like(out)
        logp = -0.5 * ((action - out) / std) ** 2 - std.log() - 0.5 * math.log(2 * math.pi)
        return action, logp.sum(-1)

    def evaluate(self, obs, action):
        """log pi(a|o) and entropy. For a Gaussian, per-dimension log-probs are summed: the
        joint ratio is the product of per-dimension ratios (`action_aggregation: prod`)."""
        dist = self.dist(obs)
        if self.discrete:
            return dist.log_prob(action.squeeze(-1).long()), dist.entropy()
        return dist.log_prob(action).sum(-1), dist.entropy().sum(-1)


class Critic(nn.Module):
    """Centralised V(s) on the global state; outputs values in ValueNorm's normalised scale."""

    def __init__(self, state_dim: int, hidden_sizes):
        super().__init__()
        self.body = mlp(state_dim, hidden_sizes)
        self.head = layer_init(nn.Linear(hidden_sizes[-1], 1), gain=1.0)

    def forward(self, state):
        return self.head(self.body(state)).squeeze(-1)


class ValueNorm(nn.Module):
    """Running mean / mean-square of the value targets, debiased (HARL's ValueNorm)."""

    def __init__(self, beta: float = 0.99999, epsilon: float = 1e-5):
        super().__init__()
        self.beta, self.epsilon = beta, epsilon
        self.register_buffer("running_mean", torch.zeros(()))
        self.register_buffer("running_mean_sq", torch.zeros(()))
        self.register_buffer("debiasing_term", torch.zeros(()))

    def mean_var(self):
        debias = self.debiasing_term.clamp(min=self.epsilon)
        mean = self.running_mean / debias
        var = (self.running_mean_sq / debias - mean**2).clamp(min=1e-2)
        return mean, var

    @torch.no_grad()
    def update(self, x):
        self.running_mean.mul_(self.beta).add_((1 - self.beta) * x.mean())
        self.running_mean_sq.mul_(self.beta).add_((1 - self.beta) * (x**2).mean())
        self.debiasing_term.mul_(self.beta).add_(1 - self.beta)

    def normalize(self, x):
        mean, var = self.mean_var()
        return (x - mean) / var.sqrt()

    def denormalize(self, x):
        mean, var = self.mean_var()
        return x * var.sqrt() + mean


def compute_gae(rewards, values, next_value, dones, truncated, gamma: float, gae_lambda: float):
    """GAE over a (num_steps, num_envs) rollout; values in the reward scale.

    dones[t]: the episode ended at step t (terminated or truncated); the next entry of the
    rollout then belongs to a new episode. Truncation as the authors' `use_proper_time_limits`:
    a truncated step gets advantage 0 (its return is V(s_t)); earlier steps bootstrap from the
    value of the episode's last state.
    """
    advantages = torch.zeros_like(rewards)
    gae = torch.zeros_like(next_value)
    for t in reversed(range(rewards.shape[0])):
        next_values = next_value if t == rewards.shape[0] - 1 else values[t + 1]
        not_done = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_values * not_done - values[t]
        gae = (delta + gamma * gae_lambda * not_done * gae) * (1.0 - truncated[t])
        advantages[t] = gae
    return advantages, advantages + values


class NonFiniteLoss(RuntimeError):
    def __init__(self, name: str, value: float):
        super().__init__(f"{name} is {value}")
        self.name = name


def check_finite(name: str, loss) -> None:
    if not torch.isfinite(loss):
        raise NonFiniteLoss(name, loss.item())


def minibatches(batch_size: int, num_minibatches: int, device):
    perm = torch.randperm(batch_size, device=device)
    return perm.chunk(num_minibatches)


def train_actor(actor, optimizer, obs, actions, old_logp, advantages, factor, args: Args, name: str):
    """The advantage actor-critic step on one agent's data, weighted by the factor of the agents
    before it (Algorithm 5): loss = -mean(M * r * A) - ent_coef * entropy, r unclipped."""
    stats = []
    for _ in range(args.update_epochs):
        for idx in minibatches(len(obs), args.num_minibatches, obs.device):
            logp, entropy = actor.evaluate(obs[idx], actions[idx])
            logratio = logp - old_logp[idx]
            ratio = logratio.exp()
            policy_loss = -(factor[idx] * ratio * advantages[idx]).mean()
            entropy = entropy.mean()
            loss = policy_loss - args.ent_coef * entropy
            check_finite(f"{name} policy_loss", loss)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(actor.parameters(), args.max_grad_norm)
            optimizer.step()
            with torch.no_grad():
                approx_kl = ((ratio - 1) - logratio).mean()
                clipfrac = ((ratio - 1).abs() > args.clip_coef).float().mean()
            stats.append(torch.stack([policy_loss.detach(), entropy.detach(), approx_kl, clipfrac]))
    return dict(zip(["policy_loss", "entropy", "approx_kl", "clipfrac"], torch.stack(stats).mean(0).tolist()))


def haa2c_update_actors(actors, optimizers, obs, actions, old_logp, advantages, agent_order, args: Args):
    """Algorithm 5's sequential update (HAPPO's, with the A2C step). Agent i_m trains with
    M^{i_1:m} = prod_{j<m} pi_new^{i_j}(a^{i_j}|o^{i_j}) / pi_old^{i_j}(a^{i_j}|o^{i_j}),
    evaluated on the whole batch after agent i_j's update, without gradient and unclipped.
    Returns each agent's training statistics and the factor it trained with."""
    factor = torch.ones_like(advantages)
    stats, factors = {}, {}
    for i in agent_order:
        factors[i] = factor
        stats[i] = train_actor(actors[i], optimizers[i], obs[i], actions[i], old_logp[i],
                               advantages, factor, args, f"agent {i}")
        with torch.no_grad():
            new_logp, _ = actors[i].evaluate(obs[i], actions[i])
        factor = factor * torch.exp(new_logp - old_logp[i])
    return stats, factors


def train_critic(critic, optimizer, value_norm, states, old_values, returns, args: Args):
    """Clipped Huber value loss on ValueNorm-normalised targets; ValueNorm is updated with each
    minibatch's returns before they are normalised, as in the authors' code. Returns the mean
    loss and the fraction of values whose change the clip limited."""
    losses = []
    for _ in range(args.update_epochs):
        for idx in minibatches(len(states), args.num_minibatches, states.device):
            value_norm.update(returns[idx])
            target = value_norm.normalize(returns[idx])
            values = critic(states[idx])
            values_clipped = old_values[idx] + (values - old_values[idx]).clamp(-args.clip_coef, args.clip_coef)
            value_loss = torch.max(
                F.huber_loss(values, target, reduction="none", delta=args.huber_delta),
                F.huber_loss(values_clipped, target, reduction="none", delta=args.huber_delta),
            ).mean()
            check_finite("value_loss", value_loss)
            optimizer.zero_grad()
            (args.vf_coef * value_loss).backward()
            nn.utils.clip_grad_norm_(critic.parameters(), args.max_grad_norm)
            optimizer.step()
            with torch.no_grad():
                clipfrac = ((values - old_values[idx]).abs() > args.clip_coef).float().mean()
            losses.append(torch.stack([value_loss.detach(), clipfrac]))
    value_loss, clipfrac = torch.stack(losses).mean(0).tolist()
    return value_loss, clipfrac


def joint_act(actors, obs, obs_dims, deterministic: bool = False):
    """Every agent acts on its slice of the flat observation; returns flat actions, log-probs."""
    actions, logps = zip(*[actor.act(o, deterministic) for actor, o in zip(actors, obs.split(obs_dims, -1))])
    return torch.cat(actions, -1), torch.stack(logps, -1)


@torch.inference_mode()
def evaluate(actors, envs, obs_dims, num_episodes: int, device, deterministic: bool = True):
    """The deterministic policy (the mode of each actor; with `deterministic` False, sampled
    actions) on separate envs for `num_episodes` episodes, split evenly over the envs: taking
    the first episodes to finish would favour short ones (in football, quick goals and quick
    losses of the ball). Returns the episodes' returns and, where the env scores goals, whether
    each ended with a goal."""
    quota = np.full(envs.num_envs, num_episodes // envs.num_envs)
    quota[: num_episodes % envs.num_envs] += 1
    returns, scores = [], []
    obs, _ = envs.reset()
    while quota.any():
        action, _ = joint_act(actors, torch.as_tensor(obs, device=device), obs_dims, deterministic)
        obs, _, _, _, _, info = envs.step(action.cpu().numpy())
        counted = ~np.isnan(info["episode_return"]) & (quota > 0)
        returns.extend(info["episode_return"][counted].tolist())
        if "episode_score" in info:
            scores.extend(info["episode_score"][counted].tolist())
        quota[counted] -= 1
    return returns, scores


def save_checkpoint(path, actors, critic, value_norm, actor_optimizers, critic_optimizer, args, global_step, iteration,
                    random):
    """One file with everything `--resume` needs. Written atomically; a failure (a full disk) is returned, not raised."""
    return write_checkpoint({
        "algo": ALGO, "env": args.env, "args": asdict(args),
        "global_step": global_step, "iteration": iteration, "random": random,
        "actors": [a.state_dict() for a in actors],
        "critic": critic.state_dict(), "value_norm": value_norm.state_dict(),
        "actor_optimizers": [o.state_dict() for o in actor_optimizers],
        "critic_optimizer": critic_optimizer.state_dict(),
    }, path)


if __name__ == "__main__":
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

    # agent setup: one actor per agent (no parameter sharing), one critic
    actors = [Actor(spec, args.hidden_sizes).to(device) for spec in envs.agents]
    critic = Critic(envs.state_dim, args.hidden_sizes).to(device)
    value_norm = ValueNorm().to(device)
    # fused: one kernel per step instead of a dozen small ops per parameter (same update)
    actor_optimizers = [torch.optim.Adam(a.parameters(), lr=args.learning_rate, eps=1e-5, fused=True) for a in actors]
    critic_optimizer = torch.optim.Adam(critic.parameters(), lr=args.critic_learning_rate, eps=1e-5, fused=True)

    # storage: what the envs return stays in numpy until the rollout ends, what the actors
    # produce stays in torch, so each step converts once each way
    T, E = args.num_steps, args.num_envs
    obs_buf = np.zeros((T, E, sum(obs_dims)), dtype=np.float32)
    state_buf = np.zeros((T + 1, E, envs.state_dim), dtype=np.float32)  # + the state after the rollout
    rewards_buf = np.zeros((T, E), dtype=np.float32)
    dones_buf = np.zeros((T, E), dtype=np.float32)
    truncated_buf = np.zeros((T, E), dtype=np.float32)
    actions_buf = torch.zeros((T, E, sum(act_cols)), device=device)
    logp_buf = torch.zeros((T, E, num_agents), device=device)

    global_step, start_iteration = 0, 1
    if ckpt is not None:
        load_states(args.resume, [*zip(actors, ckpt["actors"]), *zip(actor_optimizers, ckpt["actor_optimizers"]),
                                  (critic, ckpt["critic"]), (critic_optimizer, ckpt["critic_optimizer"]),
                                  (value_norm, ckpt["value_norm"])])
        global_step, start_iteration = ckpt["global_step"], ckpt["iteration"] + 1
        print(f"resumed from {args.resume} at step {global_step}")

    batch_size = T * E
    num_iterations = args.total_timesteps // batch_size
    # --stop-at ends this run early; the schedule stays the whole run's
    last_iteration = min(num_iterations, -(-args.stop_at // batch_size)) if args.stop_at else num_iterations
    checkpoint_path = f"{run_dir}/{args.exp_name}.cleanrl_model"
    # a checkpoint's generators and, on the batched simulator, its envs' episodes: the run goes on exactly
    restored = restore_random_state(ckpt.get("random"), envs, eval_envs) if ckpt else None
    next_obs, next_state = restored or envs.reset(seed=args.seed)
    snapshot = random_state(envs, eval_envs)  # as of the last completed iteration
    start_time, start_step = time.time(), global_step
    collect_time = update_time = 0.0  # seconds in each phase, for the progress line
    trained_iteration, trained_step = start_iteration - 1, global_step  # last completed update
    episode_returns, episode_scores, eval_return, eval_score_rate = [], [], float("nan"), float("nan")
    # Ctrl-C, or a scheduler's SIGTERM, now stops training with a checkpoint (the `except` below).
    # Set explicitly: a process started in the background inherits SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        for iteration in range(start_iteration, last_iteration + 1):
            if args.anneal_lr:
                frac = 1.0 - (iteration - 1.0) / num_iterations
                for opt in actor_optimizers:
                    opt.param_groups[0]["lr"] = frac * args.learning_rate
                critic_optimizer.param_groups[0]["lr"] = frac * args.critic_learning_rate

            torch.set_num_threads(collect_threads)
            tick = time.time()
            # rollout; if an env worker fails, it is restarted and the rollout collected again from
            # its first step, with the same policy (the update stays on-policy)
            step, rollout_step = 0, global_step
            while step < T:
                global_step += E
                obs_buf[step], state_buf[step] = next_obs, next_state
                with torch.inference_mode():
                    action, logp = joint_act(actors, torch.as_tensor(next_obs, device=device), obs_dims)
                actions_buf[step], logp_buf[step] = action, logp
                try:
                    next_obs, next_state, reward, terminated, truncated, info = envs.step(action.cpu().numpy())
                except EnvWorkerFailure as err:
                    next_obs, next_state = envs.recover(err, rollout_step)
                    step, global_step = 0, rollout_step
                    continue
                done = terminated | truncated
                rewards_buf[step], dones_buf[step], truncated_buf[step] = reward, done, truncated & ~terminated
                if done.any():
                    episode_returns.extend(info["episode_return"][done].tolist())
                    writer.add_scalar("charts/episodic_return", info["episode_return"][done].mean(), global_step)
                    writer.add_scalar("charts/episodic_length", info["episode_length"][done].mean(), global_step)
                    if "episode_score" in info:  # football: the fraction of episodes ending in a goal
                        episode_scores.extend(info["episode_score"][done].tolist())
                        writer.add_scalar("charts/score_rate", info["episode_score"][done].mean(), global_step)
                step += 1
            state_buf[T] = next_state

            collect_time += time.time() - tick
            torch.set_num_threads(update_threads)
            tick = time.time()

            # values of the whole rollout in one pass (the critic did not change during it), and
            # advantages on the denormalised values
            states = torch.as_tensor(state_buf, device=device)
            with torch.no_grad():
                values = critic(states)  # (T + 1, E), normalised
                advantages, returns = compute_gae(
                    torch.as_tensor(rewards_buf, device=device), value_norm.denormalize(values[:-1]),
                    value_norm.denormalize(values[-1]), torch.as_tensor(dones_buf, device=device),
                    torch.as_tensor(truncated_buf, device=device), args.gamma, args.gae_lambda)

            # flatten the batch; one normalised advantage shared by all agents
            b_obs = torch.as_tensor(obs_buf, device=device).reshape(batch_size, -1).split(obs_dims, -1)
            b_actions = actions_buf.reshape(batch_size, -1).split(act_cols, -1)
            b_logp = logp_buf.reshape(batch_size, num_agents).unbind(-1)
            b_advantages = advantages.reshape(-1)
            b_advantages = (b_advantages - b_advantages.mean()) / (b_advantages.std(correction=0) + 1e-5)

            # sequential actor updates in a fresh random order, then the critic
            agent_order = torch.randperm(num_agents).tolist()
            actor_stats, factors = haa2c_update_actors(actors, actor_optimizers, b_obs, b_actions, b_logp,
                                                       b_advantages, agent_order, args)
            value_loss, value_clipfrac = train_critic(
                critic, critic_optimizer, value_norm, states[:-1].reshape(batch_size, -1), values[:-1].reshape(-1),
                returns.reshape(-1), args)
            update_time += time.time() - tick
            trained_iteration, trained_step = iteration, global_step

            # logging
            sps = int((global_step - start_step) / (time.time() - start_time))
            writer.add_scalar("charts/SPS", sps, global_step)
            writer.add_scalar("charts/learning_rate", actor_optimizers[0].param_groups[0]["lr"], global_step)
            writer.add_scalar("losses/value_loss", value_loss, global_step)
            writer.add_scalar("losses/value_clipfrac", value_clipfrac, global_step)
            for key in ["policy_loss", "entropy", "approx_kl", "clipfrac"]:
                writer.add_scalar(f"losses/{key}", np.mean([s[key] for s in actor_stats.values()]), global_step)
                for i, s in actor_stats.items():
                    writer.add_scalar(f"agents/{i}/{key}", s[key], global_step)
            for i, factor in factors.items():  # how far the earlier agents' updates moved M from 1 (eq. 13)
                writer.add_scalar(f"agents/{i}/factor_std", factor.std().item(), global_step)

            if args.eval_interval and (iteration % args.eval_interval == 0 or iteration == last_iteration):
                torch.set_num_threads(collect_threads)
                eval_returns = None
                while eval_returns is None:  # an env worker's failure: restarted (training envs reset), again
                    try:
                        eval_returns, eval_scores = evaluate(actors, eval_envs, obs_dims, args.eval_episodes, device)
                    except EnvWorkerFailure as err:
                        next_obs, next_state = envs.recover(err, global_step)
                eval_return = float(np.mean(eval_returns))
                writer.add_scalar("eval/episodic_return", eval_return, global_step)
                if eval_scores:
                    eval_score_rate = float(np.mean(eval_scores))
                    writer.add_scalar("eval/score_rate", eval_score_rate, global_step)
                if args.capture_video:
                    def policy(o):
                        with torch.no_grad():
                            obs_t = torch.as_tensor(o, device=device)
                            return joint_act(actors, obs_t, obs_dims, deterministic=True)[0].cpu().numpy()
                    record_episode(args.env, policy, args.seed + iteration, f"videos/{run_name}/step_{global_step}.mp4")

            # the iteration is over: what a checkpoint saves is now complete
            snapshot = random_state(envs, eval_envs)
            if args.checkpoint_interval and iteration % args.checkpoint_interval == 0:
                saved = save_checkpoint(checkpoint_path, actors, critic, value_norm, actor_optimizers, critic_optimizer,
                                        args, global_step, iteration, snapshot)
                if not saved.ok:  # this checkpoint only is lost; the next interval tries again
                    print(f"warning: {saved}; training goes on", file=sys.stderr, flush=True)

            if iteration % args.log_interval == 0 or iteration == last_iteration:
                elapsed = time.time() - start_time
                left = elapsed / (global_step - start_step) * (last_iteration * batch_size - global_step)
                train_return = np.mean(episode_returns) if episode_returns else float("nan")
                score = ""
                if envs.scores:
                    train_score = np.mean(episode_scores) if episode_scores else float("nan")
                    score = f"score_rate {train_score:.2f} eval {eval_score_rate:.2f} "
                busy = collect_time + update_time
                print(f"iter {iteration}/{num_iterations} step {global_step} return {train_return:.2f} "
                      f"eval {eval_return:.2f} {score}value_loss {value_loss:.4f} "
                      f"policy_loss {np.mean([s['policy_loss'] for s in actor_stats.values()]):.4f} SPS {sps} "
                      f"(collect {collect_time / busy:.0%}, update {update_time / busy:.0%}) "
                      f"elapsed {timedelta(seconds=round(elapsed))} left {timedelta(seconds=round(left))}", flush=True)
                episode_returns, episode_scores = [], []
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C (or SIGTERM) must not break the save
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        envs.close()  # workers first: one may be mid-step
        if trained_iteration < start_iteration:  # no update in this run: nothing new to save
            print("\ninterrupted before the first update of this run; no checkpoint", flush=True)
            sys.exit(130)
        saved = save_checkpoint(checkpoint_path, actors, critic, value_norm, actor_optimizers, critic_optimizer,
                                args, trained_step, trained_iteration, snapshot)
        print(f"\ninterrupted after iteration {trained_iteration}, step {trained_step}; {saved}", flush=True)
        sys.exit(130)
    except NonFiniteLoss as err:
        saved = save_checkpoint(checkpoint_path, actors, critic, value_norm, actor_optimizers, critic_optimizer,
                                args, trained_step, trained_iteration, snapshot)
        print(f"error: non-finite loss at iteration {trained_iteration + 1}: {err}; "
              f"{saved} (of the last update)", file=sys.stderr)
        envs.close()
        sys.exit(1)
    except EnvWorkerFailure as err:  # failures in a row (common/envs.py: MAX_FAILURES), a lasting fault
        saved = save_checkpoint(checkpoint_path, actors, critic, value_norm, actor_optimizers, critic_optimizer,
                                args, trained_step, trained_iteration, snapshot)
        print(f"error: {err}; {saved} (of the last update)", file=sys.stderr)
        envs.close()
        sys.exit(1)

    if args.save_model or last_iteration < num_iterations:  # a stopped run goes on from its checkpoint
        saved = save_checkpoint(checkpoint_path, actors, critic, value_norm, actor_optimizers, critic_optimizer,
                                args, trained_step, trained_iteration, snapshot)
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
