"""The environment layer: shapes, seeding, auto-reset, episode statistics, workers == serial."""

import numpy as np
import pytest

from common.envs import GRF_ENVS, MPE_EPISODE_LENGTH, check_backend, make_vec_env
from conftest import random_actions


@pytest.mark.parametrize("env_id, obs_dims, state_dim, act_cols", [
    ("mpe_spread", [18, 18, 18], 54, [1, 1, 1]),
    ("mpe_spread_continuous", [18, 18, 18], 54, [5, 5, 5]),
    ("mpe_speaker_listener", [3, 11], 14, [1, 1]),  # heterogeneous agents
    ("mpe_speaker_listener_continuous", [3, 11], 14, [3, 5]),
])
def test_shapes(env_id, obs_dims, state_dim, act_cols):
    envs = make_vec_env(env_id, 3)
    assert [a.obs_dim for a in envs.agents] == obs_dims
    assert [a.act_cols for a in envs.agents] == act_cols
    assert envs.state_dim == state_dim
    obs, state = envs.reset(seed=0)
    assert obs.shape == (3, sum(obs_dims)) and obs.dtype == np.float32
    assert state.shape == (3, state_dim)
    obs, state, reward, term, trunc, info = envs.step(random_actions(envs.agents, envs.num_envs, np.random.default_rng(0)))
    assert obs.shape == (3, sum(obs_dims)) and state.shape == (3, state_dim)
    assert reward.shape == term.shape == trunc.shape == (3,)
    assert info["final_obs"].shape == obs.shape and info["final_state"].shape == state.shape
    envs.close()


def test_seeding():
    a, b = make_vec_env("mpe_spread", 3), make_vec_env("mpe_spread", 3)
    obs_a, _ = a.reset(seed=7)
    obs_b, _ = b.reset(seed=7)
    assert np.array_equal(obs_a, obs_b)
    assert not np.array_equal(obs_a[0], obs_a[1])  # env k is seeded with seed + k
    assert not np.array_equal(obs_a, b.reset(seed=8)[0])


def test_auto_reset_and_episode_statistics():
    envs = make_vec_env("mpe_spread", 2)
    obs, _ = envs.reset(seed=0)
    rng, total = np.random.default_rng(0), np.zeros(2)
    for t in range(1, MPE_EPISODE_LENGTH + 1):
        prev_obs = obs
        obs, state, reward, term, trunc, info = envs.step(random_actions(envs.agents, envs.num_envs, rng))
        total += reward
        assert not term.any()
        if t < MPE_EPISODE_LENGTH:
            assert not trunc.any() and np.isnan(info["episode_return"]).all()
    assert trunc.all()  # 25-step episodes end in truncation
    np.testing.assert_allclose(info["episode_return"], total, rtol=1e-6)
    assert (info["episode_length"] == MPE_EPISODE_LENGTH).all()
    # the returned obs start the next episode; the finished one's last obs is kept in info
    assert not np.array_equal(obs, info["final_obs"])
    np.testing.assert_array_equal(obs[:, 2:4], state[:, 2:4])  # agent 0's position: obs == state
    assert np.abs(info["final_obs"] - prev_obs).max() > 0
    obs, _, _, _, trunc, _ = envs.step(random_actions(envs.agents, envs.num_envs, rng))
    assert not trunc.any()


@pytest.mark.parametrize("env_id", ["mpe_spread", "mpe_speaker_listener_continuous"])
def test_worker_processes_equal_serial(env_id):
    serial, workers = make_vec_env(env_id, 5), make_vec_env(env_id, 5, num_workers=2)
    try:
        a, b = serial.reset(seed=3), workers.reset(seed=3)
        rng = np.random.default_rng(1)
        for _ in range(2 * MPE_EPISODE_LENGTH + 3):
            np.testing.assert_array_equal(a[0], b[0])
            actions = random_actions(serial.agents, serial.num_envs, rng)
            a, b = serial.step(actions), workers.step(actions)
            for x, y in zip(a[:5], b[:5]):
                np.testing.assert_array_equal(x, y)
            for key in a[5]:
                np.testing.assert_array_equal(a[5][key], b[5][key])
    finally:
        serial.close()
        workers.close()


def test_missing_gfootball_is_one_line_naming_the_install_command(monkeypatch):
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gfootball" else real_find_spec(name, *a))
    for env_id in GRF_ENVS:
        with pytest.raises(ValueError, match="install it with `bash setup.sh`"):
            check_backend(env_id, "gfootball")
    check_backend("mpe_spread", "batched")  # MPE is unaffected
