"""mpe2's `simple_spread_v3` for many envs at once, in numpy, with `SerialVecEnv`'s interface.

The same MDP as `simple_spread_v3.parallel_env(N, local_ratio, max_cycles, continuous_actions)`
at its defaults (no curriculum, no early termination, full observability), with every env's
state in a few (num_envs, ...) float64 arrays. Floating-point operations are done in the order
mpe2 does them, so positions, velocities, rewards and float32 observations come out bit for bit
equal to mpe2's (tests/test_batched_spread.py checks this against real mpe2 envs).

The physical state is public and may be written in place (tests use it to force collisions):

    pos  (num_envs, 2N, 2) float64   entities as mpe2's `world.entities`: agents 0..N-1, then
                                     landmarks 0..N-1
    vel  (num_envs, 2N, 2) float64   landmark rows stay 0 (landmarks are not movable)

`observe()` returns obs/state of the current state (e.g. after writing pos/vel), and
`agent_rewards` (num_envs, N) float64 holds mpe2's per-agent rewards of the last step.
"""

from __future__ import annotations

import numpy as np

from common.envs import AgentSpec

# mpe2 constants (core.World, core.Entity / Agent, simple_spread.Scenario, SimpleEnv._set_action)
DT = 0.1
DAMPING = 0.25
CONTACT_FORCE = 1e2
CONTACT_MARGIN = 1e-3
AGENT_SIZE = 0.15
MASS = 1.0
SENSITIVITY = 5.0  # agent.accel is None
DIM_C = 2  # silent agents still show others' (zero) comm state in observations

# Discrete action -> u, as SimpleEnv._set_action: [no_action, left, right, down, up], then * 5.
_MOVES = np.array([[0.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]]) * SENSITIVITY


class BatchedSpread:
    """`num_envs` simple_spread_v3 envs stepped together, with auto-reset (see module doc)."""

    scores = False  # no goals in MPE

    def __init__(self, num_envs: int, N: int = 3, local_ratio: float = 0.5,
                 continuous: bool = False, max_cycles: int = 25):
        assert num_envs >= 1 and N >= 1 and 0.0 <= local_ratio <= 1.0
        self.num_envs, self.N = num_envs, N
        self.local_ratio, self.continuous, self.max_cycles = local_ratio, continuous, max_cycles
        # [vel(2), pos(2), landmarks - pos (2N), others - pos (2(N-1)), others' comm (2(N-1))]
        self.agent_obs_dim = 4 + 2 * N + 2 * (N - 1) + DIM_C * (N - 1)
        if continuous:
            spec = AgentSpec(self.agent_obs_dim, False, 5, 0.0, 1.0)
        else:
            spec = AgentSpec(self.agent_obs_dim, True, 5)
        self.agents = [spec] * N
        self.obs_dim = N * self.agent_obs_dim
        self.state_dim = self.obs_dim  # mpe2's state() is the concatenation of all observations
        # others[i] = agents other than i in increasing index: mpe2's order both for the
        # observation and for summing pairwise contact forces onto agent i
        self._others = np.array([[j for j in range(N) if j != i] for i in range(N)],
                                dtype=np.intp).reshape(N, N - 1)
        self.pos = np.zeros((num_envs, 2 * N, 2))
        self.vel = np.zeros((num_envs, 2 * N, 2))
        self.agent_rewards = np.zeros((num_envs, N))
        # Like mpe2's constructor, each env starts with a fresh-entropy generator.
        self._rngs = [np.random.default_rng() for _ in range(num_envs)]
        self._steps = np.zeros(num_envs, dtype=np.int64)
        self._returns = np.zeros(num_envs)
        self._reset_envs(range(num_envs))

    # ----------------------------------------------------------------- reset / observation
    def _reset_envs(self, envs) -> None:
        # Scenario.reset_world draws uniform(-1, 1, 2) per agent, then per landmark, and
        # nothing else; one (2N, 2) draw consumes the generator identically.
        n_ent = 2 * self.N
        for k in envs:
            self.pos[k] = self._rngs[k].uniform(-1.0, 1.0, (n_ent, 2))
            self.vel[k] = 0.0

    def _relative_agents(self, P: np.ndarray) -> np.ndarray:
        """(E, N, N-1, 2): [e, i, r] = p_j - p_i for j = others[i, r]."""
        return P[:, self._others] - P[:, :, None, :]

    def _observe(self, pos: np.ndarray, vel: np.ndarray, rel: np.ndarray | None = None):
        """Flat float32 observations (E, N * agent_obs_dim) of the given entity states;
        `rel` is _relative_agents(agent positions) when already at hand."""
        E, N = pos.shape[0], self.N
        P, L = pos[:, :N], pos[:, N:]
        if rel is None:
            rel = self._relative_agents(P)
        obs = np.zeros((E, N, self.agent_obs_dim), dtype=np.float32)  # comm slots stay 0
        # mpe2 builds the float64 vector, then casts it to float32 (assignment rounds alike)
        obs[..., 0:2] = vel[:, :N]
        obs[..., 2:4] = P
        obs[..., 4:4 + 2 * N] = (L[:, None, :, :] - P[:, :, None, :]).reshape(E, N, 2 * N)
        o = 4 + 2 * N
        obs[..., o:o + 2 * (N - 1)] = rel.reshape(E, N, 2 * (N - 1))
        return obs.reshape(E, N * self.agent_obs_dim)

    def observe(self) -> tuple[np.ndarray, np.ndarray]:
        obs = self._observe(self.pos, self.vel)
        return obs, obs.copy()

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Env k is seeded with seed + k, as mpe2's reset(seed=seed + k); None continues each
        env's generator, as mpe2's reset() does."""
        if seed is not None:
            # == gymnasium.utils.seeding.np_random(seed): Generator(PCG64(SeedSequence(seed)))
            self._rngs = [np.random.default_rng(seed + k) for k in range(self.num_envs)]
        self._reset_envs(range(self.num_envs))
        self._steps[:] = 0
        self._returns[:] = 0.0
        self.agent_rewards[:] = 0.0
        return self.observe()

    def get_state(self) -> dict:
        """Every env's state and generator, for a checkpoint (common/runs.py random_state); plain
        types and tensors only, what `torch.load(weights_only=True)` reads back."""
        import torch

        arrays = {"pos": self.pos, "vel": self.vel, "steps": self._steps, "returns": self._returns,
                  "agent_rewards": self.agent_rewards}
        return {**{k: torch.from_numpy(v.copy()) for k, v in arrays.items()},
                "rngs": [rng.bit_generator.state for rng in self._rngs]}

    def set_state(self, state: dict) -> None:
        """Continue from `get_state()`'s result, as if never stopped."""
        for key in ("pos", "vel", "agent_rewards"):
            getattr(self, key)[:] = state[key].numpy()
        self._steps[:], self._returns[:] = state["steps"].numpy(), state["returns"].numpy()
        for rng, saved in zip(self._rngs, state["rngs"], strict=True):
            rng.bit_generator.state = saved

    # ----------------------------------------------------------------- step
    def _action_force(self, actions: np.ndarray) -> np.ndarray:
        """Agent control forces u (E, N, 2) float64, as SimpleEnv._set_action."""
        E, N = self.num_envs, self.N
        a = np.asarray(actions)
        if not self.continuous:
            idx = a.reshape(E, N).astype(np.int64)  # truncates like SerialVecEnv's int()
            if idx.min() < 0 or idx.max() >= len(_MOVES):
                raise ValueError("discrete simple_spread actions must be in 0..4")
            return _MOVES[idx]
        # Clip to the Box and hand mpe2 float32, as SerialVecEnv does (for float32 input this is
        # also exactly what ClipOutOfBoundsWrapper does); mpe2 then takes a[2] - a[1] in the
        # action's dtype (float32) before adding it to the float64 u.
        a = np.clip(a.reshape(E, N, 5), 0.0, 1.0).astype(np.float32)
        u = np.empty((E, N, 2))
        u[..., 0] = a[..., 2] - a[..., 1]
        u[..., 1] = a[..., 4] - a[..., 3]
        u *= SENSITIVITY
        return u

    def step(self, actions: np.ndarray):
        E, N = self.num_envs, self.N
        force = self._action_force(actions)  # (+ 0.0 motor noise in mpe2: u_noise is None)
        P, V, L = self.pos[:, :N], self.vel[:, :N], self.pos[:, N:]  # views, updated in place

        # World.apply_environment_force: soft contact between every agent pair (landmarks do
        # not collide). delta = p_i - p_j; mpe2 computes pair (a<b) once and gives b -force,
        # which is bitwise the same as computing it from b's side, so all ordered pairs are
        # computed directly; agent i's forces are summed in increasing partner index, as mpe2.
        if N > 1:
            delta = P[:, :, None, :] - P[:, self._others]  # (E, N, N-1, 2)
            dist = np.sqrt(delta[..., 0] ** 2 + delta[..., 1] ** 2)
            k = CONTACT_MARGIN
            penetration = np.logaddexp(0.0, -(dist - 2 * AGENT_SIZE) / k) * k
            pair_force = CONTACT_FORCE * delta / dist[..., None] * penetration[..., None]
            for r in range(N - 1):
                force = force + pair_force[:, :, r]

        # World.integrate_state: position with the old velocity, then damping, then force.
        # max_speed is None in simple_spread, so no speed clamp.
        P += V * DT
        V *= 1 - DAMPING
        V += (force / MASS) * DT

        # Rewards on the new state (SimpleEnv._execute_world_step).
        d = P[:, :, None, :] - L[:, None, :, :]  # (E, agents, landmarks)
        min_dist = np.sqrt(d[..., 0] ** 2 + d[..., 1] ** 2).min(axis=1)
        global_rew = np.zeros(E)
        for lm in range(N):  # rew -= min(dists), landmark by landmark
            global_rew = global_rew - min_dist[:, lm]
        rel = self._relative_agents(P)
        if N > 1:
            # is_collision: dist < size + size; the agent itself is excluded (a != agent)
            hits = np.sqrt(rel[..., 0] ** 2 + rel[..., 1] ** 2) < 2 * AGENT_SIZE
            local = 0.0 - hits.sum(axis=2)  # -count, as 0 - 1.0 - ... (and +0.0, not -0.0)
        else:
            local = np.zeros((E, N))
        self.agent_rewards[:] = (global_rew[:, None] * (1 - self.local_ratio)
                                 + local * self.local_ratio)
        team = np.zeros(E)
        for i in range(N):  # SerialVecEnv: sum over agents in agent order
            team = team + self.agent_rewards[:, i]

        obs = self._observe(self.pos, self.vel, rel)
        self._steps += 1
        self._returns += team
        # SimpleEnv.step: truncation once steps >= max_cycles; is_terminal is always False here
        truncated = self._steps >= self.max_cycles
        terminated = np.zeros(E, dtype=bool)
        info = {
            "final_obs": np.zeros((E, self.obs_dim), dtype=np.float32),
            "final_state": np.zeros((E, self.state_dim), dtype=np.float32),
            "episode_return": np.full(E, np.nan),
            "episode_length": np.zeros(E, dtype=np.int64),
        }
        done = np.flatnonzero(truncated)
        if done.size:
            info["final_obs"][done] = obs[done]
            info["final_state"][done] = obs[done]
            info["episode_return"][done] = self._returns[done]
            info["episode_length"][done] = self._steps[done]
            self._returns[done] = 0.0
            self._steps[done] = 0
            self._reset_envs(done)
            obs[done] = self._observe(self.pos[done], self.vel[done])
        return obs, obs.copy(), team.astype(np.float32), terminated, truncated, info

    def close(self) -> None:
        pass
