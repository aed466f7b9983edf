"""HATD3's parts: the sequential actor update (Algorithm 7), target policy smoothing, Polyak
targets, the bootstrap at truncation and termination, the replay buffer, the warm-up actions."""

import numpy as np
import torch
import torch.nn as nn

import hatd3
from common.batched_spread import BatchedSpread
from common.envs import AgentSpec

BOX = AgentSpec(4, False, 3, 0.0, 1.0)  # MPE's continuous box: [0, 1], half-width 0.5


class RecordingCritic(nn.Module):
    """Q(s, a) = sum(a): every call records the joint action it saw."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(()))
        self.seen = []

    def forward(self, state, action):
        self.seen.append(action.detach().clone())
        return self.weight * action.sum(-1)


def test_sequential_update_sees_new_actions_before_and_old_after():
    """Agent i_m's critic input holds the NEW actions of i_1..i_m-1 and the OLD ones of
    i_m+1..i_n; each agent's own column is its action before its own step. The critic's
    parameters get no gradient and are trainable again afterwards."""
    torch.manual_seed(0)
    actors = [hatd3.Actor(BOX, (16,)) for _ in range(3)]
    optimizers = [torch.optim.SGD(a.parameters(), lr=1.0) for a in actors]
    obs = [torch.randn(32, 4) for _ in actors]
    critic = RecordingCritic()
    with torch.no_grad():
        old = [a(o) for a, o in zip(actors, obs)]
    order = [2, 0, 1]
    hatd3.hatd3_update_actors(actors, optimizers, critic, obs, torch.zeros(32, 1), order)
    with torch.no_grad():
        new = [a(o) for a, o in zip(actors, obs)]
    assert all(not torch.allclose(n, o) for n, o in zip(new, old))  # every agent moved
    assert len(critic.seen) == 3
    for m, seen in enumerate(critic.seen):
        cols = seen.split(3, -1)
        for j, agent in enumerate(order):
            expected = new[agent] if j < m else old[agent]
            assert torch.equal(cols[agent], expected), (m, agent)
    assert critic.weight.grad is None and critic.weight.requires_grad


def test_target_smoothing_noise_is_clipped_and_exploration_noise_is_not():
    """Noise in units of the box's half-width (0.5 here): smoothing N(0, 0.2) clipped to 0.5,
    so at most 0.25 from the action; exploration N(0, 0.1) unclipped, std 0.05; both stay in the box."""
    torch.manual_seed(0)
    actor = hatd3.Actor(BOX, (8,))
    action = torch.full((100_000, 3), 0.5)
    smoothed = actor.perturb(action, std=0.2, clip=0.5) - 0.5
    assert smoothed.abs().max() <= 0.25 and (smoothed.abs() == 0.25).float().mean() > 0.01  # clipped, not rescaled
    wide = actor.perturb(action, std=10.0, clip=0.5) - 0.5
    assert wide.abs().max() == 0.25 and (wide.abs() == 0.25).float().mean() > 0.9
    explored = actor.perturb(action, std=0.1) - 0.5
    assert abs(explored.std().item() - 0.05) < 1e-3
    unclipped = actor.perturb(action, std=10.0)
    assert unclipped.min() == 0.0 and unclipped.max() == 1.0  # clipped to the box only


def test_targets_move_by_exactly_polyak_toward_the_online_nets():
    torch.manual_seed(0)
    online, target = hatd3.QNetwork(5, 2, (8,)), hatd3.QNetwork(5, 2, (8,))
    before = [p.clone() for p in target.parameters()]
    hatd3.soft_update(target, online, 0.005)
    for old, new, p in zip(before, target.parameters(), online.parameters()):
        assert not torch.equal(old, p)
        torch.testing.assert_close(new, 0.995 * old + 0.005 * p, rtol=0, atol=1e-7)
    assert all(not p.grad_fn for p in target.parameters())


def test_bootstrap_is_kept_on_truncation_and_cut_on_termination():
    """MPE episodes end by the 25-step time limit: the stored next state is the episode's real
    last state (not the reset one) and, not terminated, it is bootstrapped from."""
    envs = BatchedSpread(2, continuous=True, max_cycles=25)
    envs.reset(seed=0)
    rng = np.random.default_rng(0)
    for t in range(25):
        next_obs, next_state, reward, terminated, truncated, info = envs.step(rng.random((2, 15), dtype=np.float32))
    assert truncated.all() and not terminated.any()
    real_obs, real_state = hatd3.real_next(next_obs, next_state, terminated | truncated, info)
    assert np.array_equal(real_obs, info["final_obs"]) and np.array_equal(real_state, info["final_state"])
    assert not np.array_equal(real_state, next_state)  # the env already returned the reset state
    reward, next_q = torch.tensor([-1.0, -1.0]), torch.tensor([-10.0, -10.0])
    y = hatd3.td_target(reward, torch.as_tensor(terminated, dtype=torch.float32), next_q, 0.99)
    torch.testing.assert_close(y, reward + 0.99 * next_q)
    y = hatd3.td_target(reward, torch.tensor([1.0, 0.0]), next_q, 0.99)
    torch.testing.assert_close(y, torch.tensor([-1.0, -1.0 - 9.9]))


def test_replay_buffer_wraps_around_and_samples_only_stored_rows():
    rb = hatd3.ReplayBuffer(5, {"obs": (2,), "reward": ()}, "cpu")
    for start in (0, 3, 6):
        rows = torch.arange(start, start + 3, dtype=torch.float32)
        rb.add(obs=rows[:, None].repeat(1, 2), reward=rows)
    assert rb.size == 5 and rb.pos == 4
    assert rb.data["reward"].tolist() == [5, 6, 7, 8, 4]  # rows 0-3 overwritten, oldest first
    assert torch.equal(rb.data["obs"][:, 0], rb.data["reward"])
    torch.manual_seed(0)
    assert set(rb.sample(1000)["reward"].tolist()) == {4, 5, 6, 7, 8}
    partial = hatd3.ReplayBuffer(10, {"reward": ()}, "cpu")
    partial.add(reward=torch.tensor([1.0, 2.0, 3.0]))
    assert set(partial.sample(1000)["reward"].tolist()) == {1, 2, 3}  # never an empty row


def test_warmup_actions_are_uniform_in_the_box():
    torch.manual_seed(0)
    for spec in (BOX, AgentSpec(4, False, 3, -2.0, 3.0)):
        actions = hatd3.Actor(spec, (8,)).uniform(100_000, "cpu")
        assert actions.shape == (100_000, 3)
        assert actions.min() >= spec.low and actions.max() < spec.high
        counts = torch.histc(actions, bins=10, min=spec.low, max=spec.high) / actions.numel()
        assert (counts - 0.1).abs().max() < 0.005, counts
