"""Google Research Football against the real engine: global state, reward convention, score."""

import os

import numpy as np
import pytest

pytest.importorskip("gfootball", reason="Google Research Football is installed by `bash setup.sh`")

from common.envs import FootballEnv, SerialVecEnv, grf_state, make_vec_env  # noqa: E402


def random_play(num_agents: int, rng):
    """Mostly 'right' and 'shot' (so that goals happen now and then), sometimes any action."""
    return np.array([rng.choice([5, 12, rng.integers(0, 19)]) for _ in range(num_agents)], dtype=np.float32)


def test_state_of_a_synthetic_observation_equals_hand_assembled_vector():
    """Fewer than 11 players per side (padding), the right team on the ball, a set piece,
    and an agent without an active player."""
    left, right = np.arange(6.0).reshape(3, 2), -np.arange(4.0).reshape(2, 2)
    raw = [dict(left_team=left, left_team_direction=left / 10, right_team=right, right_team_direction=right / 10,
                ball=[0.1, 0.2, 0.3], ball_direction=[0.4, 0.5, 0.6], ball_owned_team=1, game_mode=3, active=2),
           dict(active=-1), dict(active=10)]
    expected = np.full(115 + 2 * 11, -1.0, dtype=np.float32)
    expected[0:6] = [0, 1, 2, 3, 4, 5]
    expected[22:28] = [0, 0.1, 0.2, 0.3, 0.4, 0.5]
    expected[44:48] = [0, -1, -2, -3]
    expected[66:70] = [0, -0.1, -0.2, -0.3]
    expected[88:94] = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    expected[94:97] = [0, 0, 1]  # ball owner: none, left, right
    expected[97:104] = [0, 0, 0, 1, 0, 0, 0]  # game mode 3
    expected[104:137] = 0
    expected[104 + 2] = 1  # agent 0 controls player 2
    expected[126 + 10] = 1  # agent 1 has none; agent 2 controls player 10
    assert np.array_equal(grf_state(raw), expected)


def test_state_is_the_engine_observations_rearranged():
    """On real states mid-episode: the state holds agent 0's simple115v2 observation (the
    engine's own encoding) with game mode and active player swapped, then each other agent's
    active-player one-hot."""
    env = FootballEnv("grf_ca_hard")
    rng = np.random.default_rng(0)
    obs, state = env.reset(seed=0)
    for _ in range(30):
        n = len(env.agents)
        assert state.shape == (115 + (n - 1) * 11,) and obs.shape == (n * 115,)
        own = obs.reshape(n, 115)
        assert np.array_equal(state[:97], own[0, :97])  # players, ball, owner
        assert np.array_equal(state[97:104], own[0, 108:115])  # game mode
        for k in range(n):
            assert np.array_equal(state[104 + 11 * k: 115 + 11 * k], own[k, 97:108])  # active player
        assert np.array_equal(state, grf_state(env.env.unwrapped.observation()))
        obs, state, _, done, _ = env.step(random_play(n, rng))
        if done:
            obs, state = env.reset()
    env.close()


def same_player_observations(ours: list[dict], theirs: list[dict]) -> bool:
    return [o.keys() for o in ours] == [o.keys() for o in theirs] and all(
        np.array_equal(o[key], t[key]) for o, t in zip(ours, theirs) for key in o)


def test_lean_layer_gives_gfootballs_own_observations_and_actions():
    """common/gfootball_lean.py against gfootball's FootballEnv on the same engine states: each
    step of random play over several episodes, the per-player observations that the wrappers
    turn into simple115v2 and the rewards, and the actions passed to the engine."""
    from gfootball.env import football_env

    env = FootballEnv("grf_ca_hard")
    inner = env.env.unwrapped
    assert type(inner).__name__ == "LeanFootballEnv"
    rng = np.random.default_rng(2)
    env.reset(seed=2)
    episodes = 0
    while episodes < 4:
        theirs = football_env.FootballEnv._convert_observations(
            inner, inner._env.observation(), inner._agent, inner._agent_left_position, inner._agent_right_position)
        assert same_player_observations(inner.observation(), theirs)
        _, _, _, done, _ = env.step(random_play(4, rng))
        assert inner._get_actions() == football_env.FootballEnv._get_actions(inner) == inner._agent._action
        if done:
            episodes += 1
            env.reset()
    env.close()


@pytest.fixture(scope="module")
def ps_episodes():
    """Seeded random play on grf_ps until episodes with and without a goal have finished, with a
    spy on the engine: per step its reward vector and score_reward, and what our env returned."""
    envs = SerialVecEnv("grf_ps", 1)  # in this process, so that the spy sees the engine
    engine = envs.envs[0].env
    engine_step, raw = engine.step, []

    def spy(action):
        out = engine_step(action)
        raw.append((out[1].copy(), out[3]["score_reward"]))
        return out

    engine.step = spy
    rng = np.random.default_rng(1)
    envs.reset(seed=1)
    steps, episodes = [], []  # episodes: (score from our info, engine's last score_reward)
    while len(episodes) < 150 and not ({0.0, 1.0} <= {s for s, _ in episodes}):
        _, _, reward, _, _, info = envs.step(random_play(2, rng)[None])
        steps.append((reward[0], *raw[-1]))
        if not np.isnan(info["episode_return"][0]):
            episodes.append((info["episode_score"][0], raw[-1][1]))
    envs.close()
    return steps, episodes


def test_team_reward_is_the_first_agents_reward(ps_episodes):
    steps, _ = ps_episodes
    assert all(team == rewards[0] for team, rewards, _ in steps)
    # not vacuous: checkpoint rewards go to the player on the ball only
    assert any(rewards[1] != rewards[0] for _, rewards, _ in steps)


def test_episode_score_is_a_goal_on_the_last_step(ps_episodes):
    _, episodes = ps_episodes
    assert {0.0, 1.0} <= {score for score, _ in episodes}, "no goal (or no miss) in 150 episodes"
    assert all(score == float(last_score_reward > 0) for score, last_score_reward in episodes)


@pytest.mark.parametrize("num_workers", [1, 2, 4])
def test_engines_per_worker_keep_the_vector_env_contract(num_workers):
    """4 envs in 1, 2 or 4 worker processes (4, 2 or 1 engines each, stepped in turn) keep the
    contract of every finished episode: auto-reset, return, length, score. The engine is not
    bit-reproducible across processes (docs/football.md), so the layouts are not compared step for step;
    seeding through the chunks is the code MPE's workers-equal-serial test checks bit for bit."""
    rng = np.random.default_rng(num_workers)
    envs = make_vec_env("grf_3v1", 4, num_workers=num_workers, backend="gfootball")
    try:
        assert len(envs.pool.procs) == num_workers and envs.scores and envs.state_dim == 115 + 2 * 11
        assert [end - start for start, end in envs.bounds] == [4 // num_workers] * num_workers
        obs, state = envs.reset(seed=4)
        returns, lengths, finished = np.zeros(4), np.zeros(4, dtype=int), 0
        for _ in range(150):
            obs, state, reward, terminated, truncated, info = envs.step(np.stack([random_play(3, rng) for _ in range(4)]))
            assert obs.shape == (4, 3 * 115) and state.shape == (4, 137) and not truncated.any()
            returns, lengths = returns + reward, lengths + 1
            for k in np.flatnonzero(terminated):
                assert info["episode_return"][k] == pytest.approx(returns[k])
                assert info["episode_length"][k] == lengths[k] and info["episode_score"][k] in (0.0, 1.0)
                assert not np.array_equal(info["final_obs"][k], obs[k])  # obs is the new episode's first
                returns[k], lengths[k], finished = 0.0, 0, finished + 1
            assert np.isnan(info["episode_score"][~terminated]).all()
        assert finished >= 2  # some episodes ended, so the contract was checked
    finally:
        envs.close()
    assert all(proc.poll() is not None for proc in envs.pool.procs)


def test_football_workers_heap_is_on_huge_pages(monkeypatch):
    """A worker's engines live on transparent huge pages (docs/football.md, "Heap pages"), and a
    caller's own glibc tunables reach it, their own choice of heap pages first."""
    from common.envs import worker_tunables

    assert worker_tunables("glibc.malloc.arena_max=2") == "glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1"
    assert worker_tunables("glibc.malloc.hugetlb=0") == "glibc.malloc.hugetlb=0"
    libc = os.confstr("CS_GNU_LIBC_VERSION") or ""
    if not libc.startswith("glibc") or tuple(map(int, libc.split()[1].split(".")[:2])) < (2, 35):
        pytest.skip(f"{libc or 'this C library'} has no glibc.malloc.hugetlb")
    try:
        with open("/sys/kernel/mm/transparent_hugepage/enabled") as f:
            if "[never]" in f.read():
                pytest.skip("transparent huge pages are off on this machine")
    except FileNotFoundError:
        pytest.skip("this kernel has no transparent huge pages")
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    envs = make_vec_env("grf_ca_hard", 1, num_workers=1, backend="gfootball")
    try:
        envs.reset(seed=0)
        with open(f"/proc/{envs.pool.procs[0].pid}/smaps_rollup") as f:
            huge_kb = next(int(line.split()[1]) for line in f if line.startswith("AnonHugePages:"))
    finally:
        envs.close()
    assert huge_kb >= 50_000  # most of an engine's ~57 MB
