"""benchmarks/evaluate.py: any script's checkpoint evaluated with its deterministic (or sampled)
policy, how its football episodes end, and one episode recorded as an MP4."""

import re
import subprocess

import numpy as np
import pytest
import torch

import happo
from benchmarks.evaluate import EpisodeLengths
from conftest import GRF_TINY, SCRIPTS, run_dir, run_script, video_frames


def evaluate(*args, cwd) -> subprocess.CompletedProcess:
    return run_script("benchmarks/evaluate.py", *map(str, args), cwd=cwd)


@pytest.mark.parametrize("script", SCRIPTS)
def test_evaluates_a_checkpoint_and_records_a_video(script, checkpoint_of, tmp_path):
    out = evaluate(checkpoint_of(script), "--episodes", 3, "--num-envs", 2, "--num-workers", 0,
                   "--video", tmp_path / "episode.mp4", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    algo = script.removesuffix(".py")
    assert re.search(rf"^{algo} on mpe_spread\S* at step 100: return -?\d+\.\d+ \(std \d+\.\d+\) "
                     r"over 3 deterministic episodes of 25 steps on average$", out.stdout, re.M), out.stdout
    assert f"video of one episode (25 steps) written to {tmp_path / 'episode.mp4'}" in out.stdout
    frames = video_frames(tmp_path / "episode.mp4")  # spread: 25 steps, the first state and one frame after each
    assert len(frames) == 26 and frames[0].std() > 0 and not np.array_equal(frames[-1], frames[-2])
    # the same episodes again: the same line (the deterministic policy on the same seeds)
    again = evaluate(checkpoint_of(script), "--episodes", 3, "--num-envs", 2, "--num-workers", 0, cwd=tmp_path)
    assert again.stdout.splitlines()[-1] == out.stdout.splitlines()[0]


@pytest.mark.parametrize("make_file, message", [
    (lambda path: path.write_text("not a checkpoint"), "is not a checkpoint"),
    (lambda path: None, "no such file"),
])
def test_refuses_what_is_not_a_checkpoint(make_file, message, tmp_path):
    path = tmp_path / "model.cleanrl_model"
    make_file(path)
    out = evaluate(path, cwd=tmp_path)
    assert out.returncode == 2 and message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_refuses_an_empty_evaluation(checkpoint_of, tmp_path):
    out = evaluate(checkpoint_of("happo.py"), "--episodes", 0, cwd=tmp_path)
    assert out.returncode == 2 and "--episodes 0" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_sampled_actions_and_what_cannot_be_sampled(checkpoint_of, tmp_path):
    mode = evaluate(checkpoint_of("happo.py"), "--episodes", 3, "--num-envs", 2, "--num-workers", 0, cwd=tmp_path)
    sampled = evaluate(checkpoint_of("happo.py"), "--episodes", 3, "--num-envs", 2, "--num-workers", 0, "--sampled",
                       cwd=tmp_path)
    assert sampled.returncode == 0 and "over 3 sampled episodes of 25 steps" in sampled.stdout, sampled.stderr[-2000:]
    assert sampled.stdout.split(": return ")[1] != mode.stdout.split(": return ")[1]  # other actions, other returns
    out = evaluate(checkpoint_of("hatd3.py"), "--sampled", cwd=tmp_path)
    assert out.returncode == 2 and "--sampled: hatd3" in out.stderr and len(out.stderr.strip().splitlines()) == 1


class ScriptedEpisodes:
    """A vector env whose env k ends episode i after 3 (2 - k) + i + 1 steps, with that length as its
    return: env 0's episodes are the longest, so the others finish more than their quota meanwhile."""

    num_envs = 3

    def reset(self):
        self.t, self.episode = np.zeros(3, int), np.zeros(3, int)
        return np.zeros((3, 1), np.float32), None

    def step(self, action):
        self.t += 1
        done = self.t == 3 * (2 - np.arange(3)) + self.episode + 1
        info = {"episode_return": np.where(done, self.t, np.nan), "episode_length": np.where(done, self.t, 0)}
        self.episode[done] += 1
        self.t[done] = 0
        return np.zeros((3, 1), np.float32), None, None, done, done, info


class Idle:
    def act(self, obs, deterministic):
        return torch.zeros(len(obs), 1), torch.zeros(len(obs))


def test_the_lengths_are_those_of_the_episodes_evaluate_counts():
    envs = EpisodeLengths(ScriptedEpisodes())
    returns, _ = happo.evaluate([Idle()], envs, [1], 7, torch.device("cpu"))  # quotas 3, 2, 2
    assert len(envs.lengths[2]) > 2  # more episodes ended than were counted
    assert sorted(envs.counted(7)) == sorted(returns) == [1, 2, 4, 5, 7, 8, 9]


def test_football_episodes_end_by_a_goal_the_time_limit_or_otherwise(tmp_path):
    result = run_script("happo.py", "--env", "grf_ca_easy", *GRF_TINY, "--save-model", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (checkpoint,) = run_dir(tmp_path).glob("*.cleanrl_model")
    for flags in ([], ["--sampled"]):
        out = evaluate(checkpoint, "--episodes", 2, "--num-envs", 1, "--num-workers", 0, *flags, cwd=tmp_path)
        assert out.returncode == 0, out.stderr[-2000:]
        line = re.search(r"over 2 (deterministic|sampled) episodes of (\d+) steps on average, score rate (\S+); "
                         r"ended by a goal (\d+)%, by the time limit (\d+)%, by the ball out of play or lost (\d+)%$",
                         out.stdout, re.M)
        assert line, out.stdout
        length, rate, goal, limit, other = int(line[2]), float(line[3]), *map(int, line.groups()[3:])
        assert 0 < length <= 401 and goal == round(100 * rate) and goal + limit + other == 100
