"""Helpers shared by the tests: run a script as a user would, read what it logged."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ON_POLICY = ["happo.py", "happo_rga.py", "mappo.py", "haa2c.py", "hatrpo.py"]
SCRIPTS = [*ON_POLICY, "hatd3.py"]

# The smallest budget that still runs every part of an on-policy script: rollout, update,
# evaluation, logging (2 iterations of 2 envs x 25 steps).
TINY = ["--num-envs", "2", "--num-steps", "25", "--total-timesteps", "100", "--num-workers", "1",
        "--eval-interval", "1", "--eval-episodes", "2", "--num-eval-envs", "2", "--log-interval", "1"]
# HATD3 (off-policy): 2 iterations of 2 envs x 25 steps, the first the warm-up, the second with
# 25 gradient steps on batches of 32.
HATD3_TINY = [*TINY[:2], "--train-interval", "25", *TINY[4:6], "--warmup-steps", "50", "--batch-size", "32",
              *TINY[6:]]
# Football: one iteration of 2 envs x 401 steps (one update; every env ends an episode within
# it: the time limit ends one at step 401 at the latest), then one evaluation of 2 episodes.
GRF_TINY = [*TINY[:2], "--num-steps", "401", "--total-timesteps", "802", *TINY[8:]]


def tiny(script: str) -> list[str]:
    """The TINY budget in the flags of `script`."""
    return HATD3_TINY if script == "hatd3.py" else TINY


def run_script(script: str, *args: str, cwd, timeout: float = 300, **popen) -> subprocess.CompletedProcess:
    """`python <script> <args>` from `cwd` (runs/ goes there), output captured as text."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, str(REPO / script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout, **popen)


def start_script(script: str, *args: str, cwd, stderr=subprocess.STDOUT, **popen) -> subprocess.Popen:
    """`python -u <script> <args>` from `cwd`, running: its output (stderr merged, unless
    `stderr` says otherwise) readable line by line as it comes."""
    return subprocess.Popen([sys.executable, "-u", str(REPO / script), *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=stderr, text=True, **popen)


def wait_until(condition, timeout: float, what: str, every: float = 0.2):
    """Poll `condition()` until it gives something true, which is returned; fails after `timeout` s."""
    deadline = time.time() + timeout
    while not (value := condition()):
        assert time.time() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        time.sleep(every)
    return value


def random_actions(agents, num_envs: int, rng, low: float = -0.5, high: float = 1.5, dtype=np.float32):
    """A flat action array for `agents` (AgentSpecs): uniform indices for discrete agents; for
    continuous ones values in [low, high], wider than the action space so that some get clipped."""
    cols = [rng.integers(0, a.action_dim, (num_envs, 1)) if a.discrete
            else rng.uniform(low, high, (num_envs, a.action_dim)) for a in agents]
    return np.concatenate(cols, axis=1).astype(dtype)


def run_dir(cwd) -> Path:
    """The single run directory a script created under cwd/runs."""
    (path,) = (Path(cwd) / "runs").iterdir()
    return path


def read_scalars(path) -> dict[str, list[tuple[int, float]]]:
    """TensorBoard scalars of a run: tag -> [(step, value), ...]."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(path), size_guidance={"scalars": 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.fixture
def tiny_run(tmp_path):
    """Run a script with the TINY budget (plus extra args) in a fresh directory; must succeed."""
    def _run(script: str, *args: str, cwd=None) -> subprocess.CompletedProcess:
        result = run_script(script, *tiny(script), *args, cwd=cwd or tmp_path)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        return result
    return _run


def video_frames(path) -> list:
    """The frames of a video file, as opencv reads them back."""
    import cv2

    capture = cv2.VideoCapture(str(path))
    frames = []
    while (frame := capture.read()[1]) is not None:
        frames.append(frame)
    return frames


def workers_of(proc: subprocess.Popen) -> list[psutil.Process]:
    """The env worker processes a script started (its own children only)."""
    try:
        return [p for p in psutil.Process(proc.pid).children(recursive=True) if "worker_main" in " ".join(p.cmdline())]
    except psutil.NoSuchProcess:
        return []


def gone(workers: list[psutil.Process], timeout: float = 10) -> bool:
    _, alive = psutil.wait_procs(workers, timeout=timeout)
    return not alive


@pytest.fixture(scope="session")
def checkpoint_of(tmp_path_factory):
    """script -> the checkpoint of its TINY run on its default env (saved at the end by default),
    made once; each call gives a fresh copy outside any run directory, so that a run resumed
    from it starts a run directory of its own and leaves the original alone."""
    made = {}

    def _of(script: str) -> Path:
        if script not in made:
            cwd = tmp_path_factory.mktemp(script.replace(".py", ""))
            result = run_script(script, *tiny(script), cwd=cwd)
            assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
            (made[script],) = run_dir(cwd).glob("*.cleanrl_model")
        copy = tmp_path_factory.mktemp("checkpoint") / made[script].name
        shutil.copyfile(made[script], copy)
        return copy
    return _of


def pytest_configure(config):
    config.addinivalue_line("markers", "reproduction: learning floors and golden traces of every script "
                                       "(tests/test_reproduction.py), what a fork's CI runs: pytest -m reproduction")
