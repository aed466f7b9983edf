"""Vectorised multi-agent environments behind one small interface.

Every algorithm script talks to environments only through `make_vec_env`. A vector env holds
`num_envs` copies of one task and exposes:

    agents     list[AgentSpec], one per agent (observation size and action space may differ)
    state_dim  size of the global state the centralised critic sees
    scores     whether episodes can end in a goal (football)
    reset(seed)   -> obs, state
    step(actions) -> obs, state, reward, terminated, truncated, info

with flat float32 arrays, so that a training loop converts numpy <-> torch once per step:

    obs      (num_envs, sum of obs_dim)   agents' observations side by side, in agent order
    state    (num_envs, state_dim)
    actions  (num_envs, sum of act_cols)  discrete agent: 1 column holding the index;
                                          continuous agent: action_dim columns
    reward   (num_envs,)                  one team reward per env
    terminated, truncated (num_envs,) bool

Finished envs reset themselves inside `step`; the returned obs/state are then the first of the
new episode, and `info` keeps what the finished episode needs:

    info["final_obs"], info["final_state"]   last obs/state of the episode (rows of done envs)
    info["episode_return"], info["episode_length"]   (num_envs,), NaN / 0 where not done

Envs that score goals (football, `scores` True) also report whether each finished episode
ended with a goal for the agents' team:

    info["episode_score"]   (num_envs,), 1.0 / 0.0 where done, NaN elsewhere

Nothing here imports mpe2, gfootball (or other slow packages) at module import, so scripts can
validate their arguments first.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import multiprocessing as mp
import os
import random
import signal
import warnings
from dataclasses import dataclass

import numpy as np

# env id -> (mpe2 module, continuous actions, scenario kwargs). 25-step episodes as the authors.
MPE_ENVS = {
    "mpe_spread": ("simple_spread_v3", False, {"N": 3, "local_ratio": 0.5}),
    "mpe_spread_continuous": ("simple_spread_v3", True, {"N": 3, "local_ratio": 0.5}),
    "mpe_speaker_listener": ("simple_speaker_listener_v4", False, {}),
    "mpe_speaker_listener_continuous": ("simple_speaker_listener_v4", True, {}),
    "mpe_reference": ("simple_reference_v3", False, {"local_ratio": 0.5}),
    "mpe_reference_continuous": ("simple_reference_v3", True, {"local_ratio": 0.5}),
}
MPE_EPISODE_LENGTH = 25
# env id -> (gfootball academy scenario, number of left players the agents control)
GRF_ENVS = {
    "grf_ca_easy": ("academy_counterattack_easy", 4),
    "grf_ca_hard": ("academy_counterattack_hard", 4),
    "grf_3v1": ("academy_3_vs_1_with_keeper", 3),
    "grf_ps": ("academy_pass_and_shoot_with_keeper", 2),
    "grf_rps": ("academy_run_pass_and_shoot_with_keeper", 2),
}
GRF_INSTALL = "bash setup.sh"
ENV_IDS = tuple(MPE_ENVS) + tuple(GRF_ENVS)
# `batched`: common/batched_spread.py, all envs in a few numpy operations (the same MDP as mpe2,
# tests/test_batched_spread.py); `pettingzoo`: mpe2 itself, one Python object per env;
# `gfootball`: the Google Research Football engine, one engine per worker process.
BACKENDS = ("batched", "pettingzoo", "gfootball")
BATCHED_ENVS = ("mpe_spread", "mpe_spread_continuous")


@dataclass(frozen=True)
class AgentSpec:
    """What one agent observes and how it acts."""

    obs_dim: int
    discrete: bool
    action_dim: int  # number of choices (discrete) or vector length (continuous)
    low: float = 0.0  # bounds of a continuous action; the env clips to them
    high: float = 1.0

    @property
    def act_cols(self) -> int:
        """Columns this agent occupies in the flat action array."""
        return 1 if self.discrete else self.action_dim


def check_env_id(env_id: str) -> None:
    if env_id not in ENV_IDS:
        raise ValueError(f"unknown env id {env_id!r}; valid ids: {', '.join(ENV_IDS)}")


def check_backend(env_id: str, backend: str) -> None:
    """That `backend` can simulate `env_id` here (without importing it: this is fast)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown env backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
    if env_id in GRF_ENVS:
        if backend != "gfootball":
            raise ValueError(f"{env_id} runs on --env-backend gfootball only, not {backend}")
        if importlib.util.find_spec("gfootball") is None:
            raise ValueError(f"{env_id} needs Google Research Football, which is not installed; "
                             f"install it with `{GRF_INSTALL}` (builds gfootball 2.10.2, 5-10 min)")
    elif backend == "gfootball":
        raise ValueError(f"the gfootball backend runs the grf_* ids only, not {env_id}")
    elif backend == "batched" and env_id not in BATCHED_ENVS:
        raise ValueError(f"the batched backend exists for {', '.join(BATCHED_ENVS)} only; "
                         f"use --env-backend pettingzoo for {env_id}")


class MPEEnv:
    """One mpe2 task through PettingZoo's parallel API, with flat arrays and a team reward."""

    scores = False  # no goals in MPE

    def __init__(self, env_id: str, render: bool = False):
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")  # mpe2 imports pygame
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        import importlib

        module, continuous, kwargs = MPE_ENVS[env_id]
        mpe_module = importlib.import_module(f"mpe2.{module}")
        self.env = mpe_module.parallel_env(
            max_cycles=MPE_EPISODE_LENGTH, continuous_actions=continuous,
            render_mode="rgb_array" if render else None, **kwargs
        )
        self.names = list(self.env.possible_agents)
        self.agents = []
        for name in self.names:
            obs_space, act_space = self.env.observation_space(name), self.env.action_space(name)
            if continuous:
                spec = AgentSpec(obs_space.shape[0], False, act_space.shape[0],
                                 float(act_space.low.min()), float(act_space.high.max()))
            else:
                spec = AgentSpec(obs_space.shape[0], True, int(act_space.n))
            self.agents.append(spec)
        self.state_dim = sum(a.obs_dim for a in self.agents)  # mpe2 state() = concat of obs
        self._act_splits = np.cumsum([a.act_cols for a in self.agents])[:-1]

    def _flat(self, obs: dict) -> np.ndarray:
        return np.concatenate([obs[n] for n in self.names]).astype(np.float32)

    def reset(self, seed: int | None = None):
        obs, _ = self.env.reset(seed=seed)
        flat = self._flat(obs)
        return flat, flat  # the global state is the concatenation of all observations

    def step(self, action: np.ndarray):
        actions = {}
        for name, spec, a in zip(self.names, self.agents, np.split(action, self._act_splits)):
            if spec.discrete:
                actions[name] = int(a[0])
            else:  # mpe2 clips out-of-bound actions too, but warns every time
                actions[name] = np.clip(a, spec.low, spec.high).astype(np.float32)
        obs, rewards, terms, truncs, _ = self.env.step(actions)
        flat = self._flat(obs)
        reward = float(sum(rewards[n] for n in self.names))  # team reward = sum over agents
        return flat, flat, reward, any(terms.values()), any(truncs.values())

    def render(self) -> np.ndarray:
        return self.env.render()  # (height, width, 3) uint8

    def close(self):
        self.env.close()


def grf_state(raw: list[dict]) -> np.ndarray:
    """The authors' global state from the engine's raw observations (one dict per controlled
    player), 115 + (n-1)*11 values: simple115v2's shared part once, then every agent's active
    player. Layout: left team positions, left directions, right positions, right directions
    (each padded with -1 to 11 players x 2), ball position (3) and direction (3), ball owner
    one-hot (none/left/right), game mode one-hot (7), then an 11-way one-hot of the active
    player per agent (all zero when it has none)."""
    first = raw[0]
    teams = np.full((4, 22), -1.0)
    for row, key in enumerate(("left_team", "left_team_direction", "right_team", "right_team_direction")):
        values = np.ravel(first[key])
        teams[row, : len(values)] = values
    owner = np.zeros(3)
    owner[first["ball_owned_team"] + 1] = 1.0  # -1 none, 0 left, 1 right
    mode = np.zeros(7)
    mode[first["game_mode"]] = 1.0
    active = np.zeros((len(raw), 11))
    for k, obs in enumerate(raw):
        if obs["active"] != -1:
            active[k, obs["active"]] = 1.0
    return np.concatenate([teams.ravel(), first["ball"], first["ball_direction"], owner, mode,
                           active.ravel()]).astype(np.float32)


class FootballEnv:
    """One Google Research Football academy scenario as the authors set it up: `simple115v2`
    observations, `scoring,checkpoints` rewards, 19 discrete actions per agent; the team reward
    is the first agent's reward (checkpoint rewards go to the player on the ball, so this is
    the authors' choice, kept); the episode's end, time-out included, is a termination."""

    scores = True

    def __init__(self, env_id: str, render: bool = False):
        # gym 0.25 (gfootball's API) prints an end-of-life notice on import and warns about its
        # old step API on creation: once per worker process, and nothing we can act on
        with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import gfootball.env as football_env

            scenario, n = GRF_ENVS[env_id]
            self.env = football_env.create_environment(
                env_name=scenario, representation="simple115v2", rewards="scoring,checkpoints",
                number_of_left_players_agent_controls=n, render=render)
        self.agents = [AgentSpec(obs_dim=115, discrete=True, action_dim=19)] * n
        self.state_dim = 115 + (n - 1) * 11
        self.scored = False  # whether the last step scored a goal for the agents' team

    def _state(self):
        return grf_state(self.env.unwrapped.observation())

    def reset(self, seed: int | None = None):
        if seed is not None:  # the engine draws each episode's seed from Python's `random`
            random.seed(seed)
        obs = self.env.reset()
        return obs.reshape(-1), self._state()

    def step(self, action: np.ndarray):
        obs, reward, done, info = self.env.step(action.astype(np.int64))
        self.scored = info["score_reward"] > 0
        return obs.reshape(-1), self._state(), float(reward[0]), bool(done), False

    def render(self) -> np.ndarray:
        return self.env.render(mode="rgb_array")

    def close(self):
        self.env.close()


def make_single_env(env_id: str, render: bool = False):
    check_env_id(env_id)
    return FootballEnv(env_id, render) if env_id in GRF_ENVS else MPEEnv(env_id, render)


def record_episode(env_id: str, policy, seed: int, directory: str) -> int:
    """Play one episode with `policy(obs) -> flat actions` (both (1, ...) arrays) and save its
    frames as PNG files in `directory`; returns the number of frames."""
    import pygame  # comes with mpe2; writes PNG without another dependency

    env = make_single_env(env_id, render=True)
    os.makedirs(directory, exist_ok=True)
    obs, _ = env.reset(seed)
    done, t = False, 0
    while not done:
        frame = env.render()
        pygame.image.save(pygame.surfarray.make_surface(frame.swapaxes(0, 1)), f"{directory}/frame_{t:03d}.png")
        obs, _, _, terminated, truncated = env.step(policy(obs[None])[0])
        done, t = terminated or truncated, t + 1
    env.close()
    return t


class SerialVecEnv:
    """Several envs stepped one after another in this process, with auto-reset."""

    def __init__(self, env_id: str, num_envs: int, first_index: int = 0):
        self.envs = [make_single_env(env_id) for _ in range(num_envs)]
        self.num_envs = num_envs
        self.first_index = first_index  # this chunk's position in a larger vector (seeding)
        self.agents = self.envs[0].agents
        self.state_dim = self.envs[0].state_dim
        self.obs_dim = sum(a.obs_dim for a in self.agents)
        self.scores = self.envs[0].scores
        self._returns = np.zeros(num_envs)
        self._lengths = np.zeros(num_envs, dtype=np.int64)

    def reset(self, seed: int | None = None):
        """Env k is seeded with seed + k; later resets continue each env's own generator."""
        k0 = self.first_index
        out = [env.reset(None if seed is None else seed + k0 + k) for k, env in enumerate(self.envs)]
        self._returns[:] = 0
        self._lengths[:] = 0
        return np.stack([o for o, _ in out]), np.stack([s for _, s in out])

    def step(self, actions: np.ndarray):
        obs, state = [], []
        reward = np.zeros(self.num_envs, dtype=np.float32)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        info = {
            "final_obs": np.zeros((self.num_envs, self.obs_dim), dtype=np.float32),
            "final_state": np.zeros((self.num_envs, self.state_dim), dtype=np.float32),
            "episode_return": np.full(self.num_envs, np.nan),
            "episode_length": np.zeros(self.num_envs, dtype=np.int64),
        }
        if self.scores:
            info["episode_score"] = np.full(self.num_envs, np.nan)
        for k, env in enumerate(self.envs):
            o, s, r, term, trunc = env.step(actions[k])
            self._returns[k] += r
            self._lengths[k] += 1
            if term or trunc:
                info["final_obs"][k], info["final_state"][k] = o, s
                info["episode_return"][k] = self._returns[k]
                info["episode_length"][k] = self._lengths[k]
                if self.scores:
                    info["episode_score"][k] = float(env.scored)
                self._returns[k], self._lengths[k] = 0.0, 0
                o, s = env.reset()
            obs.append(o)
            state.append(s)
            reward[k], terminated[k], truncated[k] = r, term, trunc
        return np.stack(obs), np.stack(state), reward, terminated, truncated, info

    def close(self):
        for env in self.envs:
            env.close()


def _worker(conn, env_id: str, num_envs: int, first_index: int):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the trainer's to handle
    envs = SerialVecEnv(env_id, num_envs, first_index)
    conn.send((envs.agents, envs.state_dim, envs.scores))
    while True:
        cmd, data = conn.recv()
        if cmd == "step":
            conn.send(envs.step(data))
        elif cmd == "reset":
            conn.send(envs.reset(data))
        else:
            envs.close()
            conn.close()
            return


class SubprocVecEnv:
    """Envs split into contiguous chunks, one worker process per chunk, stepped in parallel."""

    def __init__(self, env_id: str, num_envs: int, num_workers: int):
        num_workers = max(1, min(num_workers, num_envs))
        bounds = np.linspace(0, num_envs, num_workers + 1).round().astype(int)
        self.chunks = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
        ctx = mp.get_context("forkserver")
        self.conns, self.procs = [], []
        for start, end in self.chunks:
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, env_id, end - start, start), daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)
        self.agents, self.state_dim, self.scores = [c.recv() for c in self.conns][0]
        self.num_envs = num_envs
        self.closed = False

    def reset(self, seed: int | None = None):
        for conn in self.conns:
            conn.send(("reset", seed))
        obs, state = zip(*[conn.recv() for conn in self.conns])
        return np.concatenate(obs), np.concatenate(state)

    def step(self, actions: np.ndarray):
        for conn, (start, end) in zip(self.conns, self.chunks):
            conn.send(("step", actions[start:end]))
        results = [conn.recv() for conn in self.conns]
        obs, state, reward, terminated, truncated, infos = zip(*results)
        info = {key: np.concatenate([i[key] for i in infos]) for key in infos[0]}
        return (np.concatenate(obs), np.concatenate(state), np.concatenate(reward),
                np.concatenate(terminated), np.concatenate(truncated), info)

    def close(self):
        if self.closed:
            return
        self.closed = True
        for conn in self.conns:
            try:
                conn.send(("close", None))
            except (BrokenPipeError, EOFError):
                pass
        for proc in self.procs:
            proc.join(timeout=2)
            if proc.is_alive():
                proc.terminate()


def make_vec_env(env_id: str, num_envs: int, num_workers: int = 0, backend: str = "pettingzoo"):
    """`num_workers` 0 steps every env in this process; otherwise that many worker processes
    (pettingzoo backend; the batched backend always runs in this process, and gfootball always
    in one worker process per env, as the authors': an engine keeps a core busy, and engines in
    separate processes step in parallel)."""
    check_env_id(env_id)
    check_backend(env_id, backend)
    if backend == "gfootball":
        return SubprocVecEnv(env_id, num_envs, num_envs)
    if backend == "batched":
        from common.batched_spread import BatchedSpread

        _, continuous, kwargs = MPE_ENVS[env_id]
        return BatchedSpread(num_envs, continuous=continuous, max_cycles=MPE_EPISODE_LENGTH, **kwargs)
    if num_workers <= 0:
        return SerialVecEnv(env_id, num_envs)
    return SubprocVecEnv(env_id, num_envs, num_workers)
