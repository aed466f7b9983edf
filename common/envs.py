"""Vectorised multi-agent environments behind one small interface.

Every algorithm script talks to environments only through `make_vec_envs`. A vector env holds
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

With worker processes (`SubprocVecEnv`), a worker that dies, whose engine raises, or that does not
answer within `timeout` seconds (a hung engine; it is killed) makes `reset` or `step` raise
EnvWorkerFailure, once the other workers have replied; `recover` then restarts it with fresh
engines and resets the envs, so that the caller can collect its rollout again.

Nothing here imports mpe2, gfootball (or other slow packages) at module import, so scripts can
validate their arguments first.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import multiprocessing as mp
import os
import random
import signal
import subprocess
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from multiprocessing.connection import Connection

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
# the cores this process may run on (a container's or a SLURM job's share, not the machine's)
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
# `batched`: common/batched_spread.py, all envs in a few numpy operations (the same MDP as mpe2,
# tests/test_batched_spread.py); `pettingzoo`: mpe2 itself, one Python object per env;
# `gfootball`: the Google Research Football engine, several engines per worker process.
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
    the authors' choice, kept); the episode's end, time-out included, is a termination.
    gfootball's own environment, with its multi-player layer made lean (common/gfootball_lean.py)."""

    scores = True

    def __init__(self, env_id: str, render: bool = False):
        # gym 0.25 (gfootball's API) prints an end-of-life notice on import and warns about its
        # old step API on creation: once per worker process, and nothing we can act on
        with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import gfootball.env as football_env

            from common.gfootball_lean import lean

            scenario, n = GRF_ENVS[env_id]
            self.env = lean(football_env.create_environment(
                env_name=scenario, representation="simple115v2", rewards="scoring,checkpoints",
                number_of_left_players_agent_controls=n, render=render))
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


VIDEO_FPS = 10  # one frame per env step: an MPE step and a football step are both 0.1 s of play


def record_episode(env_id: str, policy, seed: int, path: str) -> tuple[int, bool | None]:
    """Play one episode with `policy(obs) -> flat actions` (both (1, ...) arrays) and write it to
    `path` as an MP4 video (MPEG-4 part 2, the codec opencv's wheels write; VLC, QuickTime and
    Windows' players play it): the first state and the state after every step, so that the last
    frame shows how the episode ended (a goal happens during the last step). Returns the number
    of steps and, on football, whether the last step scored (None elsewhere)."""
    import cv2

    env = make_single_env(env_id, render=True)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    obs, _ = env.reset(seed)
    video, done, t = None, False, 0
    while True:
        frame = env.render()  # (height, width, 3) RGB
        if video is None:
            video = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), VIDEO_FPS, frame.shape[1::-1])
        video.write(cv2.cvtColor(np.ascontiguousarray(frame, dtype=np.uint8), cv2.COLOR_RGB2BGR))
        if done:
            break
        obs, _, _, terminated, truncated = env.step(policy(obs[None])[0])
        done, t = terminated or truncated, t + 1
    video.release()
    env.close()
    return t, (env.scored if env.scores else None)


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


def _chunks(n: int, num_workers: int) -> list[tuple[int, int]]:
    """Contiguous [start, end) ranges splitting n envs over the workers as evenly as possible."""
    bounds = np.linspace(0, n, num_workers + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def _die_with_parent() -> None:
    """Linux: the kernel kills this process when its parent dies, even by SIGKILL, so no
    worker (and no engine's memory) outlives the trainer."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: workers still exit when the trainer's end of the pipe closes


def worker_main() -> None:
    """A worker process: `python -c WORKER FD ENV_ID CHUNKS`. Holds its chunk of every group of
    envs (training, evaluation) and runs the trainer's commands on them, one at a time."""
    fd, env_id, chunks = int(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
    # A worker runs in a session of its own, so a terminal's Ctrl-C reaches only the trainer; a
    # scheduler may send SIGTERM to every process of a job: the trainer handles both and closes
    # its workers, so a worker never dies mid-message or prints a traceback of its own
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent()
    conn = Connection(fd)
    groups = {}
    try:
        for name, (start, end) in chunks.items():
            if end > start:
                groups[name] = SerialVecEnv(env_id, end - start, start)
        first = next(iter(groups.values()))
        conn.send((True, (first.agents, first.state_dim, first.scores)))
        while True:
            cmd, name, data = conn.recv()
            if cmd == "close":
                break
            conn.send((True, getattr(groups[name], cmd)(data)))  # "reset" or "step"
    except EOFError:
        pass  # the trainer is gone
    except Exception:
        conn.send((False, traceback.format_exc()))
    for envs in groups.values():
        envs.close()


# The command a worker runs: a fresh interpreter that imports numpy and the simulator, never
# torch (a forked or spawned worker would carry or re-import the training script's modules).
WORKER = "from common.envs import worker_main; worker_main()"
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A worker's heap on transparent huge pages (glibc >= 2.35 reads this at start-up; elsewhere it
# is ignored). 50 + 50 football engines share a heap of about 6 GB, their scene nodes allocated
# and freed as episodes reset; with 4 KB pages a worker's steps slowed as it aged, most of it in
# the walks over those nodes; 2 MB pages made the runs' iterations faster (docs/football.md,
# "Heap pages").
HUGE_PAGE_HEAP = "glibc.malloc.hugetlb=1"


def worker_tunables(current: str | None) -> str:
    """GLIBC_TUNABLES for a worker: the caller's own, with the huge-page heap unless they set it."""
    if current and "glibc.malloc.hugetlb=" in current:
        return current
    return ":".join(filter(None, [current, HUGE_PAGE_HEAP]))


# Seconds a worker may take to answer a command, starting its engines included (about 60 s for 100
# football engines in one worker on a busy core): longer, it counts as failed (hung). Generous for
# the slowest call, and small against a football run, which lasts hours.
WORKER_TIMEOUT = 300.0
# Env worker failures in a row (no step of training between them) after which a run stops:
# one is an engine crash or an OOM kill to recover from; several at the same step, a lasting fault.
MAX_FAILURES = 3


class EnvWorkerFailure(RuntimeError):
    """Env workers that died (a segfaulting engine, the OOM killer) or whose engine raised while
    serving a command of the trainer's. `failed`: worker -> what happened; `detail`: a traceback."""

    def __init__(self, failed: dict[int, str], detail: str = "", note: str = ""):
        self.failed, self.detail = failed, detail
        super().__init__("; ".join(f"env worker {w} {what}" for w, what in failed.items()) + note)


class WorkerPool:
    """`num_workers` processes; each group of envs (e.g. training and evaluation) is split into
    contiguous chunks, one per worker, so every worker holds a part of every group and steps
    its envs one after another. Groups share the workers, so evaluation envs cost the memory
    of their engines only, not of more processes. A failed worker can be restarted with fresh
    engines (`restart`); its envs then need a reset. A worker that owes a reply for longer than
    `timeout` seconds has failed: it is killed."""

    def __init__(self, env_id: str, sizes: dict[str, int], num_workers: int, timeout: float = WORKER_TIMEOUT):
        num_workers = max(1, min(num_workers, max(sizes.values())))
        self.env_id, self.sizes, self.timeout = env_id, sizes, timeout
        self.chunks = {name: _chunks(n, num_workers) for name, n in sizes.items()}
        self.conns, self.procs = [None] * num_workers, [None] * num_workers
        self.busy, self.closed = True, False  # busy: replies are owed, the pipes are mid-message
        self.failures, self.failure_step = 0, None  # failures in a row, and the step they came at
        try:
            for w in range(num_workers):
                self._spawn(w)
            deadline = time.monotonic() + timeout
            self.specs = [self._recv(w, deadline) for w in range(num_workers)][0]
            self.busy = False
        except EnvWorkerFailure as err:  # while the engines start: the whole story, then none stays
            self.close()
            raise RuntimeError(f"{err}\n{err.detail}") from None
        except BaseException:  # Ctrl-C while engines start: none stays behind
            self.close()
            raise

    def _spawn(self, w: int) -> None:
        """Start worker w with its chunk of every group (a fresh interpreter, fresh engines)."""
        mine = {name: chunks[w] for name, chunks in self.chunks.items()}
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")])),
               "GLIBC_TUNABLES": worker_tunables(os.environ.get("GLIBC_TUNABLES"))}
        parent, child = mp.Pipe()
        self.procs[w] = subprocess.Popen(
            [sys.executable, "-c", WORKER, str(child.fileno()), self.env_id, json.dumps(mine)],
            pass_fds=[child.fileno()], env=env, start_new_session=True)
        child.close()
        self.conns[w] = parent

    def _ended(self, w: int) -> str:
        """How worker w ended, once its pipe closed (killed if it lingers)."""
        try:
            code = self.procs[w].wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.procs[w].kill()
            code = self.procs[w].wait()
        name = f" ({signal.Signals(-code).name})" if code < 0 and -code in signal.valid_signals() else ""
        return f"exited with status {code}{name}"

    def _recv(self, w: int, deadline: float):
        """Worker w's reply to a command sent before `deadline` - timeout (time.monotonic())."""
        if not self.conns[w].poll(max(0.0, deadline - time.monotonic())):
            self.procs[w].kill()  # hung (SIGKILL ends a stopped process too)
            self.procs[w].wait()
            raise EnvWorkerFailure({w: f"did not answer within {self.timeout:g} s (--worker-timeout) and was killed"})
        try:
            ok, payload = self.conns[w].recv()
        except (EOFError, OSError):  # died: the pipe closed under the message
            raise EnvWorkerFailure({w: self._ended(w)}) from None
        if not ok:
            raise EnvWorkerFailure({w: f"raised {payload.strip().splitlines()[-1]}"}, payload)
        return payload

    def call(self, group: str, cmd: str, data: list):
        """Send `cmd` with data[w] to every worker w holding envs of `group`; their replies. Raises
        EnvWorkerFailure once every live worker has replied, so the pipes stay in step."""
        workers = [w for w, (start, end) in enumerate(self.chunks[group]) if end > start]
        self.busy = True
        failed, details, replies = {}, [], []
        deadline = time.monotonic() + self.timeout  # the workers run in parallel: one deadline for all
        for w in workers:
            try:
                self.conns[w].send((cmd, group, data[w]))
            except OSError:  # died while idle (during an update, say)
                failed[w] = self._ended(w)
        for w in workers:
            if w in failed:
                continue
            try:
                replies.append(self._recv(w, deadline))
            except EnvWorkerFailure as err:
                failed.update(err.failed)
                details.append(err.detail)
        self.busy = False
        if failed:
            raise EnvWorkerFailure(failed, "".join(details))
        return replies

    def restart(self, workers) -> None:
        """Replace the given workers by fresh ones, with fresh engines; waits until they are ready."""
        self.busy = True
        for w in workers:
            self.conns[w].close()
            if self.procs[w].poll() is None:  # raised, and may still be closing its engines
                self.procs[w].kill()
            self.procs[w].wait()
            self._spawn(w)
        deadline = time.monotonic() + self.timeout
        for w in workers:
            self._recv(w, deadline)
        self.busy = False

    def close(self):
        """Ask idle workers to close their engines; kill workers that owe a reply (interrupted
        mid-step or mid-start), as they would not read the request."""
        if self.closed:
            return
        self.closed = True
        started = [w for w, proc in enumerate(self.procs) if proc is not None]
        if not self.busy:
            for w in started:
                with contextlib.suppress(OSError):
                    self.conns[w].send(("close", None, None))
        for w in started:
            try:
                self.procs[w].wait(timeout=0 if self.busy else 10)
            except subprocess.TimeoutExpired:
                self.procs[w].kill()
                self.procs[w].wait()
        for w in started:
            self.conns[w].close()


class SubprocVecEnv:
    """One group of a WorkerPool's envs, with SerialVecEnv's interface; workers step their
    chunks in parallel."""

    def __init__(self, pool: WorkerPool, group: str):
        self.pool, self.group = pool, group
        self.num_envs = pool.sizes[group]
        self.agents, self.state_dim, self.scores = pool.specs
        self.bounds = pool.chunks[group]

    def reset(self, seed: int | None = None):
        obs, state = zip(*self.pool.call(self.group, "reset", [seed] * len(self.bounds)))
        return np.concatenate(obs), np.concatenate(state)

    def step(self, actions: np.ndarray):
        results = self.pool.call(self.group, "step", [actions[start:end] for start, end in self.bounds])
        obs, state, reward, terminated, truncated, infos = zip(*results)
        info = {key: np.concatenate([i[key] for i in infos]) for key in infos[0]}
        return (np.concatenate(obs), np.concatenate(state), np.concatenate(reward),
                np.concatenate(terminated), np.concatenate(truncated), info)

    def recover(self, err: EnvWorkerFailure, step: int):
        """After `err` (in this group's command or another group's of the same workers): one
        warning line, the failed workers restarted with fresh engines, and every env of this group
        reset to a new episode; returns its obs and state. The caller then collects its rollout
        (or evaluates) again. The MAX_FAILURES-th failure in a row at the same global `step` (no
        training between them) raises EnvWorkerFailure: the run should stop."""
        pool = self.pool
        while True:
            pool.failures = pool.failures + 1 if pool.failure_step == step else 1
            pool.failure_step = step
            if pool.failures >= MAX_FAILURES:
                raise EnvWorkerFailure(err.failed, err.detail, f" at step {step}, the last of {pool.failures} failures "
                                       f"in a row with no training between them")
            print(f"warning: {err} at step {step}; restarting it with fresh engines, and the interrupted rollout "
                  f"or evaluation starts again (failure {pool.failures} in a row; {MAX_FAILURES} stop the run)",
                  file=sys.stderr, flush=True)
            try:
                pool.restart(list(err.failed))
                return self.reset()
            except EnvWorkerFailure as again:  # the new worker failed too
                err = again

    def close(self):
        self.pool.close()  # the groups share the workers; closing either closes both


def num_worker_processes(backend: str, num_envs: int, num_eval_envs: int, num_workers: int) -> int:
    """How many worker processes `make_vec_envs` starts."""
    if backend == "batched" or num_workers <= 0:
        return 0
    return min(num_workers, max(num_envs, num_eval_envs))


def make_vec_envs(env_id: str, num_envs: int, num_eval_envs: int = 0, num_workers: int = 0,
                  backend: str = "pettingzoo", timeout: float = WORKER_TIMEOUT):
    """Training envs and, if `num_eval_envs`, evaluation envs (else None). The batched backend
    runs in this process; the others in `num_workers` worker processes shared by both groups
    (0: in this process), each allowed `timeout` seconds per reply. An engine keeps a core busy,
    so more workers than cores gain nothing."""
    check_env_id(env_id)
    check_backend(env_id, backend)
    if backend == "batched":
        from common.batched_spread import BatchedSpread

        _, continuous, kwargs = MPE_ENVS[env_id]
        make = lambda n: BatchedSpread(n, continuous=continuous, max_cycles=MPE_EPISODE_LENGTH, **kwargs)  # noqa: E731
        return make(num_envs), make(num_eval_envs) if num_eval_envs else None
    if num_workers <= 0:
        return SerialVecEnv(env_id, num_envs), SerialVecEnv(env_id, num_eval_envs) if num_eval_envs else None
    sizes = {"train": num_envs, "eval": num_eval_envs} if num_eval_envs else {"train": num_envs}
    kind = "football engines" if backend == "gfootball" else "envs"
    workers = num_worker_processes(backend, num_envs, num_eval_envs, num_workers)
    print(f"starting {' + '.join(map(str, sizes.values()))} {kind} ({' + '.join(sizes)}) "
          f"in {workers} worker processes ...", flush=True)
    started = time.time()
    pool = WorkerPool(env_id, sizes, num_workers, timeout)
    print(f"{kind} ready in {time.time() - started:.0f} s", flush=True)
    return SubprocVecEnv(pool, "train"), SubprocVecEnv(pool, "eval") if num_eval_envs else None


def make_vec_env(env_id: str, num_envs: int, num_workers: int = 0, backend: str = "pettingzoo",
                 timeout: float = WORKER_TIMEOUT):
    """Training envs only (see make_vec_envs)."""
    return make_vec_envs(env_id, num_envs, 0, num_workers, backend, timeout)[0]


# Resident memory in MB, measured with gfootball 2.10.2 on Python 3.11 (docs/football.md, "Memory"): a
# worker process before its first engine, each engine it holds, and the training process
# (Python, torch, networks and optimisers) without its rollout buffers.
GRF_WORKER_MB = 80  # measured 76
GRF_ENGINE_MB = 60  # measured 57 (counterattack), 52 (pass and shoot) after 300 steps
TRAINER_MB = 400  # measured 333 (football, [64, 64] networks)
SAFETY = 0.9  # plan for at most this fraction of the available memory


def available_memory_mb() -> float:
    """MemAvailable, or what the cgroup (container, SLURM job) still allows where that is less;
    infinite where the system does not say (not Linux): the check is then skipped."""
    try:
        with open("/proc/meminfo") as f:
            available = next(int(line.split()[1]) / 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        return float("inf")
    try:
        with open("/sys/fs/cgroup/memory.max") as f, open("/sys/fs/cgroup/memory.current") as g:
            limit = f.read().strip()
            if limit != "max":
                available = min(available, (int(limit) - int(g.read())) / 2**20)
    except (OSError, ValueError):
        pass
    return available


def football_memory_mb(env_id: str, num_envs: int, num_eval_envs: int, num_workers: int, num_steps: int) -> float:
    """Estimated peak resident memory of a football run, all processes: the engines, their
    workers, the trainer and its rollout (obs, state, rewards, actions, log-probs per env-step,
    counted three times for the copies the update makes)."""
    n = GRF_ENVS[env_id][1]
    floats_per_step = n * 115 + (115 + (n - 1) * 11) + 3 + 2 * n
    buffers = 3 * num_envs * num_steps * floats_per_step * 4 / 2**20
    workers = num_worker_processes("gfootball", num_envs, num_eval_envs, num_workers)
    return TRAINER_MB + buffers + workers * GRF_WORKER_MB + (num_envs + num_eval_envs) * GRF_ENGINE_MB


def check_memory(env_id: str, num_envs: int, num_eval_envs: int, num_workers: int, num_steps: int,
                 available: float | None = None) -> None:
    """Raise ValueError, naming the figures and flags that fit, if a football run would not fit
    in the available memory. Arithmetic only: nothing has started yet."""
    if env_id not in GRF_ENVS:
        return  # MPE runs need a few hundred MB
    available = available_memory_mb() if available is None else available
    need = football_memory_mb(env_id, num_envs, num_eval_envs, num_workers, num_steps)
    if need <= SAFETY * available:
        return

    def fits(e: int, v: int, t: int) -> bool:
        return football_memory_mb(env_id, e, v, num_workers, t) <= SAFETY * available

    batch, fewer = num_envs * num_steps, range(num_envs - 1, 0, -1)
    if num_eval_envs and fits(num_envs, 1, num_steps):  # fewer evaluation engines: the same training
        v = max(v for v in range(1, num_eval_envs) if fits(num_envs, v, num_steps))
        advice = f"--num-eval-envs {v} (the same training)"
    elif e := next((e for e in fewer if batch % e == 0 and fits(e, min(e, num_eval_envs), batch // e)), None):
        advice = f"--num-envs {e} --num-steps {batch // e} --num-eval-envs {min(e, num_eval_envs)} (the same batch of {batch})"
    elif e := next((e for e in fewer if fits(e, min(e, num_eval_envs), num_steps)), None):
        advice = f"--num-envs {e} --num-eval-envs {min(e, num_eval_envs)} (a smaller batch)"
    else:
        advice = "none with these --num-steps; lower them"
    workers = num_worker_processes("gfootball", num_envs, num_eval_envs, num_workers)
    raise ValueError(f"{num_envs} + {num_eval_envs} football engines in {workers} workers need about "
                     f"{need / 1024:.1f} GB, {available / 1024:.1f} GB is available ({SAFETY:.0%} usable); "
                     f"what fits: {advice}")
