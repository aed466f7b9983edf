"""gfootball's multi-player layer without the work our set-up never uses: the same observations
and actions for less CPU time per step (docs/football.md, "Speed of the engine layer").

`gfootball.env.create_environment` puts `football_env.FootballEnv` between the engine
(`FootballEnvCore`) and the reward and representation wrappers. FootballEnv turns the engine's
observation into one dict per controlled player and gathers its players' actions. With a single
agent player that controls left players only (our set-up and the authors'), it does per step:
- two conversions of the observation: one to hand to the agent player, whose `take_action`
  ignores it and returns the actions given to `step`, and one for `step`'s result;
- in each conversion, the mirrored observation of the right team (`flip_observation`), from
  which it then takes no player;
- a deep copy of the engine's observation before each conversion, which copies every field it
  keeps again.
`LeanFootballEnv` converts once, the left players only, copying once. `tests/test_grf.py` checks
that both give equal observations and actions on the states of played episodes.

Written against gfootball 2.10.2 (the version setup.sh builds). Importing this module imports
gfootball: only where an engine starts.
"""

from __future__ import annotations

import copy

import numpy as np
from gfootball.env import constants, football_env


class LeanFootballEnv(football_env.FootballEnv):
    def _get_actions(self):
        # the agent is the only player: its actions are those given to step()
        return self._action_to_list(self._agent.take_action(None))

    def _convert_observations(self, original, player, left_player_position, right_player_position):
        """FootballEnv's conversion, the left team only (the agent controls no right player)."""
        observations = []
        controlled = original["left_agent_controlled_player"]
        for x in range(player.num_controlled_left_players()):
            o = {key: copy.deepcopy(original[key]) for key in constants.EXPOSED_OBSERVATIONS}
            o["designated"] = original["left_team_designated_player"]
            if left_player_position + x >= len(controlled):
                o["active"], o["sticky_actions"] = -1, []
            else:
                o["active"] = controlled[left_player_position + x]
                o["sticky_actions"] = np.array(copy.deepcopy(
                    original["left_agent_sticky_actions"][left_player_position + x]))
            if "frame" in original:
                o["frame"] = original["frame"]
            observations.append(o)
        return observations

    def observation(self):
        if not self._cached_observation:
            # the engine's own dict rather than a deep copy of it: the conversion copies what it keeps
            self._cached_observation = self._convert_observations(
                self._env._observation, self._agent, self._agent_left_position, self._agent_right_position)
        return self._cached_observation


def lean(env):
    """Make the FootballEnv inside a `create_environment` chain a LeanFootballEnv: the same object
    and wrappers, only these methods change. Returns env."""
    inner = env.unwrapped
    if not (type(inner) is football_env.FootballEnv and inner._players == [inner._agent]
            and inner._agent.num_controlled_right_players() == 0):
        raise ValueError("LeanFootballEnv covers one agent player controlling left players only")
    inner.__class__ = LeanFootballEnv
    return env
