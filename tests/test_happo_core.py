"""The pieces of happo.py that carry the algorithm: the factor M, GAE, ValueNorm, the actors.
The factor tests run on every script with HAPPO's sequential scheme (HAA2C, HATRPO too)."""

import copy
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import haa2c
import happo
import hatrpo
from common.envs import AgentSpec

# heterogeneous on purpose: different observation sizes and action spaces per agent
SPECS = [AgentSpec(4, True, 5), AgentSpec(6, False, 2), AgentSpec(3, True, 3)]
ARGS = SimpleNamespace(update_epochs=3, num_minibatches=2, clip_coef=0.2, ent_coef=0.01, max_grad_norm=10.0,
                       kl_threshold=0.01, cg_iters=10, cg_damping=0.1, line_search_steps=10, backtrack_coef=0.8,
                       accept_ratio=0.5)


def sequential_update(module):
    """The script's sequential actor update as (actors, optimizers, obs, actions, old_logp,
    advantages, order, args) -> (stats, factors); HATRPO's actors have no optimizer."""
    if module is hatrpo:
        return lambda actors, optimizers, *rest: hatrpo.hatrpo_update_actors(actors, *rest)
    return getattr(module, f"{module.ALGO}_update_actors")


SEQUENTIAL = [happo, haa2c, hatrpo]


def random_batch(actors, batch: int = 64):
    obs = [torch.randn(batch, spec.obs_dim) for spec in SPECS]
    with torch.no_grad():
        actions, logps = zip(*[actor.act(o) for actor, o in zip(actors, obs)])
    return obs, list(actions), list(logps)


@pytest.mark.parametrize("module", SEQUENTIAL, ids=lambda m: m.ALGO)
def test_factor_with_known_ratios(module, monkeypatch):
    """Agent i_m trains with the product of the ratios of the agents updated before it."""
    known_ratio = {0: 1.5, 1: 0.5, 2: 3.0}
    trained_with = {}

    class FakeActor:
        def __init__(self, i):
            self.i, self.shift = i, 0.0

        def evaluate(self, obs, action):  # log pi = old log pi + log(ratio) once trained
            return torch.zeros(len(obs)) + self.shift, None

    def fake_train_actor(actor, *rest):  # every script's train_actor ends with (factor, args, name)
        trained_with[actor.i] = rest[-3].clone()
        actor.shift = math.log(known_ratio[actor.i])
        return {}

    monkeypatch.setattr(module, "train_actor", fake_train_actor)
    actors = [FakeActor(i) for i in range(3)]
    zeros = [torch.zeros(8) for _ in range(3)]
    _, factors = sequential_update(module)(actors, [None] * 3, zeros, zeros, zeros, torch.ones(8), [2, 0, 1], ARGS)
    expected = {2: 1.0, 0: 3.0, 1: 3.0 * 1.5}
    for i, value in expected.items():
        assert torch.allclose(trained_with[i], torch.full((8,), value))
        assert torch.allclose(factors[i], torch.full((8,), value))


@pytest.mark.parametrize("module", SEQUENTIAL, ids=lambda m: m.ALGO)
def test_factor_equals_product_of_real_ratios(module):
    """With real actors and updates: factor of agent i_m == prod_{j<m} pi_new^j / pi_old^j,
    recomputed independently from copies of the actors taken before the update."""
    torch.manual_seed(0)
    actors = [module.Actor(spec, (16, 16)) for spec in SPECS]
    optimizers = [torch.optim.Adam(a.parameters(), lr=1e-2) for a in actors]
    obs, actions, old_logp = random_batch(actors)
    before = copy.deepcopy(actors)
    advantages = torch.randn(64)
    order = [1, 2, 0]
    stats, factors = sequential_update(module)(actors, optimizers, obs, actions, old_logp, advantages, order, ARGS)

    with torch.no_grad():
        ratio = {i: torch.exp(actors[i].evaluate(obs[i], actions[i])[0] - before[i].evaluate(obs[i], actions[i])[0])
                 for i in range(3)}
    assert all((ratio[i] - 1).abs().max() > 1e-3 for i in range(3)), "the update must change every policy"
    expected = torch.ones(64)
    for i in order:
        torch.testing.assert_close(factors[i], expected, rtol=1e-4, atol=1e-5)
        expected = expected * ratio[i]
    assert set(stats) == {0, 1, 2} and all(math.isfinite(s["policy_loss"]) for s in stats.values())


def test_gae_with_termination_and_truncation():
    """Hand-computed GAE (gamma 0.9, lambda 0.8). env 0: no episode end; env 1: truncated at
    t=1 (authors' rule: A_1 = 0, and t=0 bootstraps from V(s_1)); env 2: terminated at t=2."""
    g, lam = 0.9, 0.8
    rewards = torch.tensor([[1.0, 1.0, 1.0], [2.0, 2.0, 2.0], [3.0, 3.0, 3.0], [4.0, 4.0, 4.0]])
    values = torch.tensor([[0.5, 0.5, 0.5], [1.0, 1.0, 1.0], [1.5, 1.5, 1.5], [2.0, 2.0, 2.0]])
    next_value = torch.tensor([3.0, 3.0, 3.0])
    dones = torch.zeros(4, 3)
    truncated = torch.zeros(4, 3)
    dones[1, 1] = truncated[1, 1] = 1.0
    dones[2, 2] = 1.0
    adv, ret = happo.compute_gae(rewards, values, next_value, dones, truncated, g, lam)

    d = [4 + g * 3 - 2, 3 + g * 2 - 1.5, 2 + g * 1.5 - 1, 1 + g * 1 - 0.5]  # env 0 deltas, t=3..0
    a3 = d[0]
    a2 = d[1] + g * lam * a3
    a1 = d[2] + g * lam * a2
    a0 = d[3] + g * lam * a1
    env1 = [1 + g * 1.0 - 0.5, 0.0, d[1] + g * lam * d[0], d[0]]
    env2 = [1 + g * 1 - 0.5 + g * lam * (2 + g * 1.5 - 1 + g * lam * (3 - 1.5)),
            2 + g * 1.5 - 1 + g * lam * (3 - 1.5), 3 - 1.5, d[0]]
    expected = torch.tensor([[a0, a1, a2, a3], env1, env2]).T
    torch.testing.assert_close(adv, expected)
    torch.testing.assert_close(ret, expected + values)
    assert ret[1, 1] == values[1, 1]  # the truncated step's return is V(s)


def test_value_norm_matches_hand_computation():
    norm = happo.ValueNorm(beta=0.5)
    x1, x2 = torch.tensor([1.0, 3.0]), torch.tensor([10.0, 14.0])
    norm.update(x1)
    mean, var = norm.mean_var()
    assert mean.item() == pytest.approx(2.0) and var.item() == pytest.approx(1.0)  # debiased: exact batch stats
    norm.update(x2)
    # running = 0.5 * 0.5 * stat1 + 0.5 * stat2; debias = 0.5 * 0.5 + 0.5 = 0.75
    m = (0.25 * 2.0 + 0.5 * 12.0) / 0.75
    msq = (0.25 * 5.0 + 0.5 * 148.0) / 0.75
    mean, var = norm.mean_var()
    assert mean.item() == pytest.approx(m) and var.item() == pytest.approx(msq - m * m)
    y = torch.tensor([0.0, 5.0, 20.0])
    torch.testing.assert_close(norm.normalize(y), (y - m) / math.sqrt(msq - m * m))
    torch.testing.assert_close(norm.denormalize(norm.normalize(y)), y)

    tiny = happo.ValueNorm(beta=0.5)
    tiny.update(torch.tensor([1.0, 1.0]))
    assert tiny.mean_var()[1].item() == pytest.approx(1e-2)  # variance floor


def test_gaussian_actor_std_and_joint_log_prob():
    actor = happo.Actor(AgentSpec(5, False, 3), (8,))
    obs = torch.randn(10, 5)
    dist = actor.dist(obs)
    torch.testing.assert_close(dist.stddev, torch.full((10, 3), 0.5 * torch.sigmoid(torch.tensor(1.0)).item()))
    action, logp = actor.act(obs)
    torch.testing.assert_close(actor.evaluate(obs, action)[0], dist.log_prob(action).sum(-1))
    torch.testing.assert_close(logp, dist.log_prob(action).sum(-1))
    assert torch.equal(actor.act(obs, deterministic=True)[0], dist.mean)


def test_discrete_actor_samples_from_its_distribution():
    """act() samples by hand: its log-probs equal evaluate()'s, its mode is the argmax, and its
    action frequencies follow the categorical distribution."""
    torch.manual_seed(0)
    actor = happo.Actor(AgentSpec(4, True, 5), (8,))
    with torch.no_grad():
        actor.head.weight.mul_(200.0)  # a far-from-uniform policy, so frequencies are informative
        obs = torch.randn(1, 4).expand(20000, 4)
        action, logp = actor.act(obs)
        torch.testing.assert_close(logp, actor.evaluate(obs, action)[0])
        probs = actor.dist(obs[:1]).probs[0]
        freq = torch.bincount(action.squeeze(-1).long(), minlength=5) / 20000
        torch.testing.assert_close(freq, probs, atol=0.015, rtol=0)
        assert actor.act(obs[:1], deterministic=True)[0].item() == probs.argmax().item()


def test_non_finite_loss_is_named():
    actor = happo.Actor(SPECS[0], (8,))
    obs, actions, logps = random_batch([actor, *[happo.Actor(s, (8,)) for s in SPECS[1:]]], 16)
    args = SimpleNamespace(**{**vars(ARGS), "ent_coef": float("nan")})
    with pytest.raises(happo.NonFiniteLoss, match="agent 0 policy_loss is nan"):
        happo.train_actor(actor, torch.optim.Adam(actor.parameters()), obs[0], actions[0], logps[0],
                          torch.randn(16), torch.ones(16), args, "agent 0")


def test_evaluation_takes_the_same_number_of_episodes_from_every_env():
    """Env k ends an episode every k+1 steps with return k, and only env 0 scores. 7 episodes
    from 3 envs are 3 + 2 + 2, not the first 7 to finish (which would favour env 0)."""
    class ClockEnvs:
        num_envs = 3

        def reset(self, seed=None):
            self.t = 0
            return np.zeros((3, 4), dtype=np.float32), None

        def step(self, actions):
            self.t += 1
            done = np.array([self.t % (k + 1) == 0 for k in range(3)])
            info = {"episode_return": np.where(done, np.arange(3.0), np.nan),
                    "episode_score": np.where(done, [1.0, 0.0, 0.0], np.nan)}
            return np.zeros((3, 4), dtype=np.float32), None, None, done, None, info

    actor = happo.Actor(AgentSpec(4, True, 3), (8,))
    returns, scores = happo.evaluate([actor], ClockEnvs(), [4], 7, "cpu")
    assert sorted(returns) == [0, 0, 0, 1, 1, 2, 2]
    assert np.mean(scores) == pytest.approx(3 / 7)
