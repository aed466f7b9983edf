"""Differential check: one script's update against the authors' code (PKU-MARL/HARL), iteration
for iteration, on the same rollouts.

    HARLVENV/bin/python benchmarks/against_authors.py --harl PATH/TO/HARL --script happo --env mpe_spread
    ... --script mappo|haa2c|hatrpo --env mpe_spread_continuous --iterations 5
    ... --script happo --football-config --num-envs 50   # football's update settings on spread's rollouts

Their runner, buffers, algorithms and tuned config (`tuned_configs/pettingzoo_mpe/
simple_spread_v2-*/ALGO`) run unchanged, their environment swapped for our BatchedSpread (the
same MDP). Every iteration:
  1. their runner collects a rollout with their actors and computes its returns;
  2. our script's networks hold the same weights (copied from theirs before the first
     iteration; afterwards each side keeps its own) and see that rollout: obs, state, actions,
     rewards, dones and truncations, and the rollout's log-probs;
  3. both update with the same agent order and the same minibatch permutations (their
     `torch.randperm` draws are recorded and handed to our script in the same roles);
  4. it prints, per quantity, the largest absolute difference: values, returns, advantages,
     log-probs, the factor before each agent, the losses, every parameter after the update and
     the ValueNorm statistics.
Float rounding differs (their numpy float32 vs our torch, other summation orders), so expect
about 1e-6 relative; a difference that grows over iterations or reaches the percent is a bug.

Not part of the test suite (CI has no copy of their code). Set-up, outside the project: clone
https://github.com/PKU-MARL/HARL and make a venv with `torch==2.13.0 numpy gymnasium setproctitle
tensorboardX pyyaml absl-py` (docs/authors_code.md); our scripts
import in it as they are (tyro and TensorBoard are only needed when a script runs as `__main__`).
"""

import argparse
import contextlib
import importlib
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SCRIPTS = ("happo", "mappo", "haa2c", "hatrpo", "hatd3")
ENVS = {"mpe_spread": False, "mpe_spread_continuous": True}  # the batched simulator's ids

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--harl", required=True, help="path of a checkout of PKU-MARL/HARL")
p.add_argument("--script", choices=SCRIPTS, default="happo")
p.add_argument("--env", choices=tuple(ENVS), default="mpe_spread")
p.add_argument("--iterations", type=int, default=3, help="iterations (HATD3: gradient steps) compared")
p.add_argument("--num-envs", type=int, default=20, help="n_rollout_threads (tuned: 20)")
p.add_argument("--num-steps", type=int, default=200, help="episode_length (tuned: 200)")
p.add_argument("--seed", type=int, default=1)
p.add_argument("--resync", action="store_true",
               help="start every iteration of ours from their weights and Adam moments: isolates each "
                    "update from the drift of earlier ones")
p.add_argument("--football-config", action="store_true",
               help="the update settings of their football config (counterattack easy, HAPPO's: 15 epochs, 2 "
                    "minibatches, hidden [64, 64]) on both sides, with spread's rollouts")
p.add_argument("--their-kl", action="store_true",
               help="HATRPO: use the authors' categorical 'KL' in our script too (docs/hatrpo.md)")
a = p.parse_args()

sys.path.insert(0, os.path.abspath(a.harl))
if a.script == "hatd3" and a.env != "mpe_spread_continuous":
    sys.exit("error: hatd3 needs continuous actions: --env mpe_spread_continuous")
try:
    import harl.runners.off_policy_base_runner as offr
    import harl.runners.on_policy_base_runner as onr
    from gymnasium import spaces
    from harl.runners import RUNNER_REGISTRY
except ImportError as err:
    sys.exit(f"error: cannot import the authors' code from --harl {a.harl} ({err}); clone "
             "https://github.com/PKU-MARL/HARL and run this with a Python that has its dependencies "
             "(see this file's docstring)")

import torch  # noqa: E402

from common.batched_spread import BatchedSpread  # noqa: E402

torch.set_num_threads(1)
CONTINUOUS = ENVS[a.env]


class HarlSpread:
    """HARL's vector-env contract over BatchedSpread: (envs, agents, ...) arrays, the team reward
    repeated per agent, per-agent dones, `bad_transition` in the infos of a truncation."""

    def __init__(self, num_envs: int, seed: int):
        self.env = BatchedSpread(num_envs, continuous=CONTINUOUS, max_cycles=25)
        self.num_envs, self.n, self.seed = num_envs, self.env.N, seed
        self.n_agents = self.n
        d = self.env.agent_obs_dim
        self.observation_space = [spaces.Box(-np.inf, np.inf, (d,), np.float32)] * self.n
        self.share_observation_space = [spaces.Box(-np.inf, np.inf, (self.n * d,), np.float32)] * self.n
        act = spaces.Box(0.0, 1.0, (5,), np.float32) if CONTINUOUS else spaces.Discrete(5)
        self.action_space = [act] * self.n

    def _split(self, obs, state):
        return obs.reshape(self.num_envs, self.n, -1), np.repeat(state[:, None], self.n, axis=1)

    def _avail(self):  # their runner indexes available_actions[0] even for continuous actions
        return np.full(self.num_envs, None) if CONTINUOUS else np.ones((self.num_envs, self.n, 5), np.float32)

    def reset(self):
        return (*self._split(*self.env.reset(seed=self.seed)), self._avail())

    def step(self, actions):
        obs, state, reward, terminated, truncated, _ = self.env.step(np.asarray(actions, np.float32).reshape(self.num_envs, -1))
        dones = np.repeat((terminated | truncated)[:, None], self.n, axis=1)
        rewards = np.repeat(reward[:, None, None], self.n, axis=1).astype(np.float32)
        infos = [[{"bad_transition": True} if truncated[k] and not terminated[k] else {} for _ in range(self.n)]
                 for k in range(self.num_envs)]
        return (*self._split(obs, state), rewards, dones, infos, self._avail())

    def close(self):
        pass


class RandpermTape:
    """Their `torch.randperm` draws, each with its role (agent order, actor or critic
    minibatches), handed back to our script in the same roles and order."""

    ROLE = {"train": "order", "feed_forward_generator_actor": "actor", "feed_forward_generator_critic": "critic",
            "main": "order", "train_actor": "actor", "train_critic": "critic"}

    def __init__(self):
        self.draws, self._randperm = [], torch.randperm

    def _role(self):
        frame = sys._getframe(2)
        while frame.f_code.co_name in ("minibatches", "<listcomp>"):  # ours: inside train_actor / train_critic
            frame = frame.f_back
        return self.ROLE.get(frame.f_code.co_name, frame.f_code.co_name)

    @contextlib.contextmanager
    def record(self):
        def randperm(n, *args, **kwargs):
            out = self._randperm(n, *args, **kwargs)
            self.draws.append((self._role(), out.clone()))
            return out
        torch.randperm = randperm
        try:
            yield
        finally:
            torch.randperm = self._randperm

    @contextlib.contextmanager
    def replay(self):
        def randperm(n, *args, device=None, **kwargs):
            role = self._role()
            for k, (r, perm) in enumerate(self.draws):
                if r == role and len(perm) == n:
                    return self.draws.pop(k)[1].to(device)
            raise RuntimeError(f"our script drew a permutation of {n} ({role}) that theirs did not")
        torch.randperm = randperm
        try:
            yield
        finally:
            torch.randperm = self._randperm
            self.unused = [(r, len(p)) for r, p in self.draws]
            self.draws = []


def their_runner():
    """Their runner for --script on our simulator, with their tuned config (smaller rollouts if asked)."""
    kind = "continuous" if CONTINUOUS else "discrete"
    with open(Path(a.harl) / "tuned_configs" / "pettingzoo_mpe" / f"simple_spread_v2-{kind}" / a.script / "config.json") as f:
        cfg = json.load(f)
    algo_args, env_args = cfg["algo_args"], cfg["env_args"]
    if a.football_config:  # football has tuned configs for HAPPO only, which our presets use for all
        with open(Path(a.harl) / "tuned_configs" / "football" / "academy_counterattack_easy" / "happo" / "config.json") as f:
            football = json.load(f)["algo_args"]
        algo_args["algo"].update({k: v for k, v in football["algo"].items() if k.endswith(("_epoch", "_mini_batch"))
                                  and k in algo_args["algo"]})
        algo_args["model"]["hidden_sizes"] = football["model"]["hidden_sizes"]
    algo_args["train"].update(n_rollout_threads=a.num_envs, episode_length=a.num_steps)
    if a.script == "hatd3":  # a short warm-up, then training at once
        algo_args["train"].update(warmup_steps=50 * a.num_envs, num_env_steps=10**9)
    algo_args["seed"]["seed"] = a.seed
    algo_args["device"].update(cuda=False, torch_threads=1)
    algo_args["eval"]["use_eval"] = False
    algo_args["logger"]["log_dir"] = tempfile.mkdtemp(prefix="harl_check_")
    onr.make_train_env = offr.make_train_env = lambda *_: HarlSpread(a.num_envs, a.seed)
    runner = RUNNER_REGISTRY[a.script]({"algo": a.script, "env": "pettingzoo_mpe", "exp_name": "check"},
                                       algo_args, env_args)
    return runner, algo_args


def paired_params(ours: torch.nn.Module, theirs: torch.nn.Module):
    """Our and their parameters, matched: a Gaussian's log_std by name, the layers in order
    (they correspond one to one)."""
    def split(module):
        named = list(module.named_parameters())
        return [p for k, p in named if not k.endswith("log_std")], [p for k, p in named if k.endswith("log_std")]
    (o_layers, o_std), (t_layers, t_std) = split(ours), split(theirs)
    pairs = list(zip(o_layers + o_std, t_layers + t_std))
    assert len(o_layers + o_std) == len(t_layers + t_std) and all(o.shape == t.shape for o, t in pairs), \
        f"the networks differ: {[(k, tuple(v.shape)) for k, v in theirs.named_parameters()]} vs " \
        f"{[(k, tuple(v.shape)) for k, v in ours.named_parameters()]}"
    return pairs


def copy_params(src: torch.nn.Module, dst: torch.nn.Module) -> None:
    """Their network's parameters into ours."""
    with torch.no_grad():
        for o, t in paired_params(dst, src):
            o.copy_(t)


def copy_adam_state(src_opt, src: torch.nn.Module, dst_opt, dst: torch.nn.Module) -> None:
    """Their Adam moments and step counts into our optimiser, parameter by parameter."""
    for o, t in paired_params(dst, src):
        if t in src_opt.state:
            dst_opt.state[o] = {k: v.clone() for k, v in src_opt.state[t].items()}


def max_diff(ours, theirs) -> tuple[float, float]:
    """The largest absolute difference, and the largest magnitude of theirs (the scale)."""
    x, y = (torch.as_tensor(np.asarray(v, dtype=np.float64)) if not torch.is_tensor(v) else v.detach().double()
            for v in (ours, theirs))
    return (x.reshape(-1) - y.reshape(-1)).abs().max().item(), y.abs().max().item()


def worst(pairs) -> tuple[float, float]:
    pairs = list(pairs)
    return max(d for d, _ in pairs), max(m for _, m in pairs)


def param_diff(ours, theirs) -> tuple[float, float]:
    return worst(max_diff(o, t) for o, t in paired_params(ours, theirs))


def main():
    script = importlib.import_module(a.script)
    runner, algo_args = their_runner()
    tr = algo_args["train"]
    T, E, n = tr["episode_length"], tr["n_rollout_threads"], runner.num_agents
    env = runner.envs.env
    specs = env.agents
    obs_dims = [s.obs_dim for s in specs]

    args = script.Args(env=a.env)  # the tuned config of --env is our preset too: check the keys that matter
    algo, model = algo_args["algo"], algo_args["model"]
    for ours, theirs in [("gamma", "gamma"), ("gae_lambda", "gae_lambda"), ("clip_coef", "clip_param"),
                         ("ent_coef", "entropy_coef"), ("max_grad_norm", "max_grad_norm"),
                         ("huber_delta", "huber_delta"), ("kl_threshold", "kl_threshold")]:
        if hasattr(args, ours) and theirs in algo:
            setattr(args, ours, algo[theirs])
    args.update_epochs = algo.get("ppo_epoch", algo.get("a2c_epoch", 5))
    args.num_minibatches = algo.get("actor_num_mini_batch", 1)
    args.hidden_sizes = tuple(model["hidden_sizes"])
    if a.script == "hatrpo" and a.their_kl:
        script.mean_kl = their_categorical_kl

    # our networks, with their initial weights
    shared = a.script == "mappo" and algo.get("share_param", False)
    if shared:
        actors = [script.Actor(specs[0], args.hidden_sizes)] * n
    else:
        actors = [script.Actor(spec, args.hidden_sizes) for spec in specs]
    for i in ({0} if shared else range(n)):
        copy_params(runner.actor[i].actor, actors[i])
    critic, value_norm = script.Critic(env.state_dim, args.hidden_sizes), script.ValueNorm()
    copy_params(runner.critic.critic, critic)
    optimizer_of = {actor: torch.optim.Adam(actor.parameters(), lr=model["lr"], eps=model["opti_eps"], fused=True)
                    for actor in dict.fromkeys(actors)}
    actor_optimizers = [optimizer_of[actor] for actor in actors]
    critic_optimizer = torch.optim.Adam(critic.parameters(), lr=model["critic_lr"], eps=model["opti_eps"], fused=True)
    print(f"{a.script} on {a.env}: their runner and our {a.script}.py, {E} envs x {T} steps, seed {a.seed}"
          f"{', their football update settings' if a.football_config else ''}"
          f"{', their KL in ours' if a.their_kl else ''}{', ours resynced to theirs every iteration' if a.resync else ''}")

    runner.warmup()
    largest = {}
    for iteration in range(1, a.iterations + 1):
        # 1. their rollout and returns
        runner.prep_rollout()
        for step in range(T):
            values, actions, logp, rnn, rnn_critic = runner.collect(step)
            runner.insert((*runner.envs.step(actions), values, actions, logp, rnn, rnn_critic))
        runner.compute()
        cb, abufs = runner.critic_buffer, runner.actor_buffer
        obs = torch.as_tensor(np.concatenate([b.obs[:-1] for b in abufs], -1)).reshape(T * E, -1).split(obs_dims, -1)
        b_actions = [torch.as_tensor(b.actions).reshape(T * E, -1) for b in abufs]
        b_logp = [torch.as_tensor(b.action_log_probs).reshape(T * E, -1).sum(-1) for b in abufs]
        states = torch.as_tensor(cb.share_obs)  # (T + 1, E, state_dim)
        rewards = torch.as_tensor(cb.rewards[..., 0])
        dones = 1.0 - torch.as_tensor(cb.masks[1:, :, 0])
        truncated = 1.0 - torch.as_tensor(cb.bad_masks[1:, :, 0])
        their = {"values": cb.value_preds[:, :, 0].copy(), "returns": cb.returns[:-1, :, 0].copy()}
        their["advantages"] = their["returns"] - runner.value_normalizer.denormalize(cb.value_preds[:-1, :, 0])

        if a.resync and iteration > 1:
            for i in ({0} if shared else range(n)):
                copy_params(runner.actor[i].actor, actors[i])
                if hasattr(runner.actor[i], "actor_optimizer"):
                    copy_adam_state(runner.actor[i].actor_optimizer, runner.actor[i].actor, actor_optimizers[i], actors[i])
            copy_params(runner.critic.critic, critic)
            copy_adam_state(runner.critic.critic_optimizer, runner.critic.critic, critic_optimizer, critic)
            with torch.no_grad():
                for k in ("running_mean", "running_mean_sq", "debiasing_term"):
                    getattr(value_norm, k).copy_(getattr(runner.value_normalizer, k).reshape(()))

        # 2. their update, recording its permutations
        tape = RandpermTape()
        runner.prep_training()
        with tape.record():
            actor_infos, critic_info = runner.train()
        factors_theirs = [None if b.factor is None else b.factor.reshape(-1).copy() for b in abufs]
        order = [int(p) for r, perm in tape.draws if r == "order" for p in perm][:n]

        # 3. our update, as our script's training loop does it, with their permutations
        with torch.no_grad():
            v = critic(states)
            advantages, returns = script.compute_gae(rewards, value_norm.denormalize(v[:-1]), value_norm.denormalize(v[-1]),
                                                     dones, truncated, args.gamma, args.gae_lambda)
            logp_ours = [actor.evaluate(o, act)[0] for actor, o, act in zip(actors, obs, b_actions)]
        b_adv = advantages.reshape(-1)
        b_adv = (b_adv - b_adv.mean()) / (b_adv.std(correction=0) + 1e-5)
        with tape.replay():
            if a.script == "mappo":
                stats, factors = script.mappo_update_actors(actors, actor_optimizers, obs, b_actions, b_logp, b_adv, args), {}
            else:
                agent_order = torch.randperm(n).tolist()
                if a.script == "hatrpo":
                    stats, factors = script.hatrpo_update_actors(actors, obs, b_actions, b_logp, b_adv, agent_order, args)
                else:
                    update = getattr(script, f"{a.script}_update_actors")
                    stats, factors = update(actors, actor_optimizers, obs, b_actions, b_logp, b_adv, agent_order, args)
            value_loss, _ = script.train_critic(critic, critic_optimizer, value_norm, states[:-1].reshape(T * E, -1),
                                             v[:-1].reshape(-1), returns.reshape(-1), args)

        # 4. the differences
        d = {
            "V(s) before the update (normalised)": max_diff(v, their["values"]),
            "returns": max_diff(returns, their["returns"]),
            "advantages (before normalisation)": max_diff(advantages, their["advantages"]),
            "log-probs of the rollout's actions": worst(max_diff(o, t) for o, t in zip(logp_ours, b_logp)),
            "value loss": max_diff(value_loss, critic_info["value_loss"]),
            "critic parameters": param_diff(critic, runner.critic.critic),
            "ValueNorm statistics": worst(max_diff(getattr(value_norm, k), getattr(runner.value_normalizer, k))
                                          for k in ("running_mean", "running_mean_sq", "debiasing_term")),
        }
        for k, i in enumerate(order if a.script != "mappo" else range(n)):
            if factors and factors_theirs[i] is not None:
                d[f"factor before agent {i}"] = max_diff(factors[i], factors_theirs[i])
            info = actor_infos[k]
            if "policy_loss" in info:
                d[f"policy loss, agent {i}"] = max_diff(stats[i]["policy_loss"], info["policy_loss"])
            d[f"entropy, agent {i}"] = max_diff(stats[i]["entropy"], float(info["dist_entropy"]))
            if "kl" in info:
                d[f"KL of the step, agent {i}"] = max_diff(stats[i]["approx_kl"], float(info["kl"]))
            d[f"actor parameters, agent {i}"] = param_diff(actors[i], runner.actor[i].actor)
        print(f"\niteration {iteration}: " + ("no agent order (MAPPO)" if a.script == "mappo" else f"agent order {order}")
              + (f"; unused draws of theirs: {tape.unused}" if tape.unused else ""))
        print(f"  {'quantity':<40} {'max |ours - theirs|':>20} {'max |theirs|':>13} {'relative':>9}")
        for name, (diff, scale) in d.items():
            rel = diff / scale if scale else diff
            largest[name] = max(largest.get(name, 0.0), rel)
            print(f"  {name:<40} {diff:>20.2e} {scale:>13.2e} {rel:>9.1e}")
        runner.after_update()
    name = max(largest, key=largest.get)
    print(f"\nlargest relative difference over {a.iterations} iterations: {largest[name]:.1e} ({name})")
    runner.close()


def their_categorical_kl(old_dist, new_dist):
    """The authors' `kl_divergence` for categorical policies (trpo_util.py): the mean over
    samples of sum_a (r_a - 1 - log r_a), r_a = p_new(a) / p_old(a), unweighted by p_old."""
    from torch.distributions import Normal

    if isinstance(old_dist, Normal):
        return torch.distributions.kl_divergence(old_dist, new_dist).sum(-1).mean()
    log_ratio = new_dist.logits - old_dist.logits
    return (log_ratio.exp() - 1 - log_ratio).sum(-1).mean()


def check_hatd3():
    """HATD3, gradient step by gradient step: their runner warms up and collects as in its run();
    before each of their `train()` calls our networks take their weights, target weights and Adam
    moments (each step compared on its own), then both take the step on the batch their buffer
    drew, with the same smoothing noise (torch's random state restored) and agent order (their
    numpy permutation recorded)."""
    import hatd3 as script

    runner, algo_args = their_runner()
    algo, model, tr = algo_args["algo"], algo_args["model"], algo_args["train"]
    args = script.Args(env=a.env, gamma=algo["gamma"], polyak=algo["polyak"], policy_noise=algo["policy_noise"],
                       noise_clip=algo["noise_clip"], hidden_sizes=tuple(model["hidden_sizes"]))
    env, n = runner.envs.env, runner.num_agents
    obs_dims = [spec.obs_dim for spec in env.agents]
    actors = [script.Actor(spec, args.hidden_sizes) for spec in env.agents]
    target_actors = [script.Actor(spec, args.hidden_sizes) for spec in env.agents]
    qfs = [script.QNetwork(env.state_dim, sum(s.act_cols for s in env.agents), args.hidden_sizes) for _ in range(2)]
    qf_targets = [script.QNetwork(env.state_dim, sum(s.act_cols for s in env.agents), args.hidden_sizes) for _ in range(2)]
    actor_optimizers = [torch.optim.Adam(x.parameters(), lr=model["lr"], fused=True) for x in actors]
    critic_optimizer = torch.optim.Adam([q for qf in qfs for q in qf.parameters()], lr=model["critic_lr"], fused=True)
    c = runner.critic
    pairs = [(actors[i], runner.actor[i].actor) for i in range(n)] + \
            [(target_actors[i], runner.actor[i].target_actor) for i in range(n)] + \
            [(qfs[0], c.critic), (qfs[1], c.critic2), (qf_targets[0], c.target_critic), (qf_targets[1], c.target_critic2)]
    names = [f"actor {i}" for i in range(n)] + [f"target actor {i}" for i in range(n)] + \
            ["critic 1", "critic 2", "target critic 1", "target critic 2"]
    print(f"hatd3 on {a.env}: their runner and our hatd3.py, {a.num_envs} envs, batch {algo['batch_size']}, "
          f"every gradient step from their weights")

    # their buffer's draw and the torch random state right after it; their agent order
    drawn = {}
    sample = runner.buffer.sample
    def recording_sample():
        drawn["data"] = sample()
        drawn["rng"] = torch.get_rng_state()
        return drawn["data"]
    runner.buffer.sample = recording_sample
    permutation = np.random.permutation
    def recording_permutation(k):
        drawn["order"] = permutation(k)
        return drawn["order"]
    np.random.permutation = recording_permutation

    runner.train_episode_rewards, runner.done_episodes_rewards = np.zeros(a.num_envs), []  # as their run()
    obs, share_obs, available = runner.warmup()
    largest, steps = {}, 0
    while steps < a.iterations:
        for _ in range(tr["train_interval"]):  # their run(): collect with noise, insert
            actions = runner.get_actions(obs, available_actions=available, add_random=True)
            new = runner.envs.step(actions)
            runner.insert((share_obs, obs.transpose(1, 0, 2), actions.transpose(1, 0, 2), None, new[2], new[3],
                           new[4], new[1].copy(), new[0].copy(), None))
            obs, share_obs, available = new[0], new[1], new[5]
        for _ in range(int(tr["update_per_train"] * tr["train_interval"])):
            if steps == a.iterations:
                break
            for ours, theirs in pairs:
                copy_params(theirs, ours)
            for i in range(n):
                copy_adam_state(runner.actor[i].actor_optimizer, runner.actor[i].actor, actor_optimizers[i], actors[i])
            for k, theirs in enumerate((c.critic, c.critic2)):
                copy_adam_state(c.critic_optimizer, theirs, critic_optimizer, qfs[k])
            drawn.pop("order", None)
            runner.train()
            steps += 1
            (sp_share_obs, sp_obs, sp_actions, _, sp_reward, _, _, sp_term, sp_next_share_obs, sp_next_obs, _,
             sp_gamma) = drawn["data"]
            as_t = lambda x: torch.as_tensor(np.asarray(x, dtype=np.float32))  # noqa: E731
            batch = {"state": as_t(sp_share_obs), "obs": as_t(np.concatenate(list(sp_obs), -1)),
                     "actions": as_t(np.concatenate(list(sp_actions), -1)), "reward": as_t(sp_reward[:, 0]),
                     "terminated": as_t(sp_term[:, 0]), "next_state": as_t(sp_next_share_obs),
                     "next_obs": as_t(np.concatenate(list(sp_next_obs), -1))}
            assert np.allclose(sp_gamma, algo["gamma"]), "n_step 1: the discount is gamma"
            torch.set_rng_state(drawn["rng"])
            script.train_critic(qfs, qf_targets, target_actors, critic_optimizer, batch, obs_dims, args)
            if "order" in drawn:  # their actor step came with this one
                script.hatd3_update_actors(actors, actor_optimizers, qfs[0], batch["obs"].split(obs_dims, -1),
                                           batch["state"], [int(i) for i in drawn["order"]])
                for target, online in zip(target_actors + qf_targets, actors + qfs):
                    script.soft_update(target, online, args.polyak)
            d = {name: param_diff(ours, theirs) for name, (ours, theirs) in zip(names, pairs)}
            print(f"\ngradient step {steps}" + (f", actors in the order {list(drawn['order'])}" if "order" in drawn
                                                 else " (critics only)"))
            print(f"  {'parameters after the step':<40} {'max |ours - theirs|':>20} {'max |theirs|':>13} {'relative':>9}")
            for name, (diff, scale) in d.items():
                largest[name] = max(largest.get(name, 0.0), diff / scale)
                print(f"  {name:<40} {diff:>20.2e} {scale:>13.2e} {diff / scale:>9.1e}")
    name = max(largest, key=largest.get)
    print(f"\nlargest relative difference over {steps} gradient steps: {largest[name]:.1e} ({name})")


if __name__ == "__main__":
    check_hatd3() if a.script == "hatd3" else main()
