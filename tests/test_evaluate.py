"""benchmarks/evaluate.py: any script's checkpoint evaluated with its deterministic policy, and
one episode recorded as an MP4."""

import re
import subprocess
import sys

import pytest

from conftest import REPO, video_frames
from test_scripts import SCRIPTS

EVALUATE = str(REPO / "benchmarks" / "evaluate.py")


def evaluate(*args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, EVALUATE, *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("script", SCRIPTS)
def test_evaluates_a_checkpoint_and_records_a_video(script, checkpoint_of, tmp_path):
    out = evaluate(checkpoint_of(script), "--episodes", 3, "--num-envs", 2, "--num-workers", 0,
                   "--video", tmp_path / "episode.mp4", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    algo = script.removesuffix(".py")
    assert re.search(rf"^{algo} on mpe_spread\S* at step 100: return -?\d+\.\d+ \(std \d+\.\d+\) "
                     r"over 3 deterministic episodes$", out.stdout, re.M), out.stdout
    frames = video_frames(tmp_path / "episode.mp4")  # spread: 25 steps, one frame each
    assert len(frames) == 25 and frames[0].std() > 0
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
