"""BatchedSpread against real mpe2 simple_spread_v3 envs, and against SerialVecEnv."""

import os

os.environ.setdefault("SDL_AUDIODRIVER", "dummy")  # mpe2 imports pygame
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from mpe2 import simple_spread_v3  # noqa: E402
from numpy.testing import assert_allclose, assert_array_equal  # noqa: E402
from pettingzoo.utils.env_logger import EnvLogger  # noqa: E402

from common.batched_spread import BatchedSpread  # noqa: E402
from common.envs import MPE_EPISODE_LENGTH, SerialVecEnv  # noqa: E402
from conftest import random_actions  # noqa: E402

EnvLogger.suppress_output()  # mpe2 warns on every action it clips
TOL = 1e-9
EPISODE = 25


def close(actual, expected):
    assert_allclose(actual, expected, rtol=0, atol=TOL)


class MpeEnvs:
    """One real mpe2 parallel env per batched env; env k is seeded with seed + k."""

    def __init__(self, num_envs, N, continuous):
        self.envs = [simple_spread_v3.parallel_env(N=N, local_ratio=0.5, max_cycles=EPISODE,
                                                   continuous_actions=continuous)
                     for _ in range(num_envs)]
        self.names = self.envs[0].possible_agents
        self.N, self.continuous = N, continuous

    def world(self, k):
        return self.envs[k].unwrapped.world

    def _flat(self, obs):
        return np.concatenate([obs[n] for n in self.names])

    def reset(self, seed=None):
        return np.stack([self.reset_env(k, None if seed is None else seed + k)
                         for k in range(len(self.envs))])

    def reset_env(self, k, seed=None):
        return self._flat(self.envs[k].reset(seed=seed)[0])

    def step(self, actions):
        """obs (K, D) float32, per-agent rewards (K, N), terminated, truncated (K,),
        and the scenario's local (collision) reward terms (K, N)."""
        obs, rew, term, trunc, local = [], [], [], [], []
        for k, env in enumerate(self.envs):
            if self.continuous:
                act = {n: actions[k, 5 * i:5 * i + 5] for i, n in enumerate(self.names)}
            else:
                act = {n: int(actions[k, i]) for i, n in enumerate(self.names)}
            o, r, te, tr, _ = env.step(act)
            obs.append(self._flat(o))
            rew.append([r[n] for n in self.names])
            term.append(any(te.values()))
            trunc.append(any(tr.values()))
            scenario, world = env.unwrapped.scenario, self.world(k)
            local.append([scenario.reward(a, world) for a in world.agents])
        return (np.stack(obs), np.array(rew), np.array(term), np.array(trunc),
                np.array(local))

    def states(self):
        return np.stack([env.state() for env in self.envs])

    def physical(self):
        """pos, vel (K, 2N, 2) of world.entities (agents, then landmarks)."""
        ents = [self.world(k).entities for k in range(len(self.envs))]
        return (np.array([[e.state.p_pos for e in es] for es in ents]),
                np.array([[e.state.p_vel for e in es] for es in ents]))

    def set_agents(self, k, pos, vel):
        for i, agent in enumerate(self.world(k).agents):
            agent.state.p_pos, agent.state.p_vel = pos[i].copy(), vel[i].copy()


def assert_same_physics(benv, menv):
    pos, vel = menv.physical()
    close(benv.pos, pos)
    close(benv.vel, vel)


def force_collisions(rng, benv, menv):
    """Put every env's agents within 0.25 of one point, with random velocities, in both."""
    N = benv.N
    for k in range(benv.num_envs):
        pos = rng.uniform(-0.8, 0.8, 2) + rng.uniform(-0.125, 0.125, (N, 2))
        vel = rng.uniform(-0.5, 0.5, (N, 2))
        benv.pos[k, :N], benv.vel[k, :N] = pos, vel
        menv.set_agents(k, pos, vel)


@pytest.mark.parametrize("collide", [False, True], ids=["free", "collide"])
@pytest.mark.parametrize("continuous", [False, True], ids=["discrete", "continuous"])
@pytest.mark.parametrize("N", [3, 6])
def test_matches_mpe2(N, continuous, collide):
    num_envs, seed = 3, 1000 + 10 * N + continuous
    rng = np.random.default_rng(seed)
    benv, menv = BatchedSpread(num_envs, N, 0.5, continuous, EPISODE), MpeEnvs(num_envs, N,
                                                                                continuous)
    obs, state = benv.reset(seed)
    assert_array_equal(obs, menv.reset(seed))
    assert_array_equal(state, menv.states())
    assert_same_physics(benv, menv)
    returns, collisions, clipped = np.zeros(num_envs), 0, 0
    for t in range(2 * EPISODE + 5):  # two full episodes, two auto-resets, then some more
        if collide and t % 3 == 0:
            force_collisions(rng, benv, menv)
        actions = random_actions(benv.agents, num_envs, rng, -0.3, 1.3)  # about 1/4 clipped
        clipped += int(((actions < 0) | (actions > 1)).sum()) if continuous else 0
        obs, state, rew, term, trunc, info = benv.step(actions)
        m_obs, m_rew, m_term, m_trunc, m_local = menv.step(actions)
        collisions += int((m_local != 0).sum())

        close(benv.agent_rewards, m_rew)
        team = sum(m_rew[:, i] for i in range(N))  # team reward as SerialVecEnv sums it
        assert rew.dtype == np.float32
        assert_array_equal(rew, team.astype(np.float32))
        returns += team
        assert not term.any() and not m_term.any()
        assert_array_equal(trunc, m_trunc)
        assert_array_equal(trunc, np.full(num_envs, (t + 1) % EPISODE == 0))

        done = np.flatnonzero(trunc)
        m_pos, m_vel = menv.physical()
        live = np.flatnonzero(~trunc)  # done envs already hold their next episode
        close(benv.pos[live], m_pos[live])
        close(benv.vel[live], m_vel[live])
        assert_array_equal(info["final_obs"][done], m_obs[done])
        assert_array_equal(info["final_state"][done], menv.states()[done])
        close(info["episode_return"][done], returns[done])
        assert_array_equal(info["episode_length"][done], EPISODE)
        assert np.isnan(info["episode_return"][live]).all()
        assert not info["episode_length"][live].any() and not info["final_obs"][live].any()
        for k in done:  # unseeded reset: each env continues its own generator
            m_obs[k] = menv.reset_env(k)
            returns[k] = 0.0
        assert_array_equal(obs, m_obs)
        assert_array_equal(state, menv.states())
        assert_same_physics(benv, menv)
    if collide:  # the collision penalty was really exercised
        assert collisions > 0
    if continuous:
        assert clipped > 0


@pytest.mark.parametrize("N", [3, 6])
def test_reset_matches_mpe2(N):
    num_envs = 4
    benv, menv = BatchedSpread(num_envs, N), MpeEnvs(num_envs, N, False)
    assert benv.state_dim == menv.envs[0].state_space.shape[0]
    assert [a.obs_dim for a in benv.agents] == [
        menv.envs[0].observation_space(n).shape[0] for n in menv.names]
    for seed in [0, 1, 42, 2**31 + 5]:
        obs, state = benv.reset(seed)
        assert obs.shape == state.shape == (num_envs, benv.obs_dim) and obs.dtype == np.float32
        assert_array_equal(obs, menv.reset(seed))
        assert_array_equal(state, menv.states())
        assert_same_physics(benv, menv)
        obs, _ = benv.reset()  # unseeded: continue each env's generator
        assert_array_equal(obs, menv.reset())
        assert_same_physics(benv, menv)


@pytest.mark.parametrize("env_id, continuous", [("mpe_spread", False),
                                                ("mpe_spread_continuous", True)])
def test_matches_serial_vec_env(env_id, continuous):
    """Same outputs, dtypes and info as the project's SerialVecEnv (float64 actions here)."""
    num_envs, seed = 2, 5
    rng = np.random.default_rng(seed)
    benv, serial = BatchedSpread(num_envs, continuous=continuous), SerialVecEnv(env_id, num_envs)
    assert benv.agents == serial.agents and benv.state_dim == serial.state_dim
    assert benv.max_cycles == MPE_EPISODE_LENGTH
    for a, b in zip(benv.reset(seed), serial.reset(seed)):
        assert_array_equal(a, b)
    for _ in range(2 * EPISODE + 1):
        actions = random_actions(benv.agents, num_envs, rng, dtype=np.float64)
        out, ref = benv.step(actions), serial.step(actions)
        for a, b in zip(out[:5], ref[:5]):
            assert a.dtype == b.dtype
            assert_array_equal(a, b)
        assert out[5].keys() == ref[5].keys()
        for key in ref[5]:
            assert out[5][key].dtype == ref[5][key].dtype
            assert_array_equal(out[5][key], ref[5][key])  # NaN rows compare equal
    serial.close()
