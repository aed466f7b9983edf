"""Entity tokens: how each agent's observation and the global state split into entities, the
nodes of HAPPO-RGA's attention (docs/happo_rga.md).

A layout is a tuple of token groups. A group holds tokens of one kind (self, landmark, other
agent, player, ball, game mode, ...), all with the same features: `index[t, f]` is the position,
in the flat vector, of feature f of token t. Every position of the vector is in exactly one
token (`tests/test_rga.py` splits and reassembles every env's vectors), so nothing observed is
lost, and the token order is fixed, as RGA's channel branch needs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from common.envs import GRF_ENVS, MPE_ENVS


@dataclass(frozen=True)
class TokenGroup:
    kind: str  # tokens of one kind share one embedding
    index: np.ndarray  # (tokens, features) positions in the flat vector

    @property
    def shape(self) -> tuple[int, int]:
        return self.index.shape


def group(kind: str, *columns) -> TokenGroup:
    """Tokens whose features f are given column by column: columns[f][t] = position."""
    return TokenGroup(kind, np.stack(np.broadcast_arrays(*columns), -1).reshape(-1, len(columns)))


def pairs(start: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """The x and y positions of `count` consecutive 2-d vectors from `start`."""
    first = start + 2 * np.arange(count)
    return first, first + 1


def num_tokens(layout) -> int:
    return sum(g.shape[0] for g in layout)


def shifted(layout, offset: int):
    return tuple(TokenGroup(g.kind, g.index + offset) for g in layout)


# --- MPE (mpe2 observation code: simple_spread, simple_speaker_listener, simple_reference) ---

def spread_obs(n: int):
    """[vel 2, pos 2, landmark rel pos n x 2, other agent rel pos (n-1) x 2, their comm (n-1) x 2]."""
    other_pos, comm = 4 + 2 * n, 4 + 4 * n - 2
    return (
        group("self", 0, 1, 2, 3),
        group("landmark", *pairs(4, n)),
        group("other_agent", *pairs(other_pos, n - 1), *pairs(comm, n - 1)),
    )


SPEAKER_OBS = (group("goal_colour", 0, 1, 2),)  # the speaker sees the listener's goal colour only
# listener: [vel 2, landmark rel pos 3 x 2, speaker's message 3]
LISTENER_OBS = (group("self", 0, 1), group("landmark", *pairs(2, 3)), group("message", 8, 9, 10))
# simple_reference: [vel 2, landmark rel pos 3 x 2, the other agent's goal colour 3, its message 10]
REFERENCE_OBS = (group("self", 0, 1), group("landmark", *pairs(2, 3)), group("goal_colour", 8, 9, 10),
                 group("message", *range(11, 21)))


# --- Football: simple115v2 and the authors' global state (common/envs.py: grf_state) ---

LEFT = np.arange(11)  # left players 0-10
BALL = group("ball", *range(88, 97))  # position 3, direction 3, owner one-hot 3


def football_obs():
    """Per player: position (2) and direction (2); left players also whether they are this
    agent's active player (one-hot at 97-107); the ball; the game mode (108-114). 24 tokens."""
    return (
        group("left_player", *pairs(0, 11), *pairs(22, 11), 97 + LEFT),
        group("right_player", *pairs(44, 11), *pairs(66, 11)),
        BALL,
        group("game_mode", *range(108, 115)),
    )


def football_state(n: int):
    """As the observation, but game mode at 97-103 and, per left player, which of the n agents
    controls it (each agent's active-player one-hot, 104 + 11 a + k). 24 tokens."""
    return (
        group("left_player", *pairs(0, 11), *pairs(22, 11), *[104 + 11 * a + LEFT for a in range(n)]),
        group("right_player", *pairs(44, 11), *pairs(66, 11)),
        BALL,
        group("game_mode", *range(97, 104)),
    )


def obs_layouts(env_id: str, num_agents: int | None = None) -> list[tuple[TokenGroup, ...]]:
    """One layout per agent, in agent order (num_agents: spread's N, default 3)."""
    if env_id in GRF_ENVS:
        return [football_obs()] * GRF_ENVS[env_id][1]
    module = MPE_ENVS[env_id][0]
    if module.startswith("simple_spread"):
        n = num_agents or MPE_ENVS[env_id][2]["N"]
        return [spread_obs(n)] * n
    if module.startswith("simple_speaker_listener"):
        return [SPEAKER_OBS, LISTENER_OBS]
    return [REFERENCE_OBS] * 2


def state_layout(env_id: str, num_agents: int | None = None) -> tuple[TokenGroup, ...]:
    """MPE's state is all observations side by side: every agent's tokens. Football's is its own."""
    if env_id in GRF_ENVS:
        return football_state(GRF_ENVS[env_id][1])
    layouts, out, offset = obs_layouts(env_id, num_agents), (), 0
    for layout in layouts:
        out += shifted(layout, offset)
        offset += sum(g.index.size for g in layout)
    return out
