"""benchmarks/spread_coverage.py: the count of uncovered landmarks, and bad input."""

import subprocess
import sys

import numpy as np

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import spread_coverage  # noqa: E402


def test_uncovered_counts_landmarks_without_an_agent_nearby():
    landmarks = np.array([[[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]] * 3)
    agents = np.array([
        [[0.05, 0.0], [1.0, 0.1], [0.0, 0.9]],  # one agent on each landmark
        [[0.0, 0.0], [0.1, 0.0], [0.0, 1.0]],  # two agents share a landmark: (1, 0) is left
        [[5.0, 5.0], [0.0, 0.3], [0.5, 0.5]],  # none within 0.2
    ])
    assert spread_coverage.uncovered(agents, landmarks, 0.2).tolist() == [0, 1, 3]
    assert spread_coverage.uncovered(agents, landmarks, 0.75).tolist() == [0, 1, 0]  # (1, 0) is 0.9 away


def test_a_file_that_is_not_a_checkpoint_is_one_line():
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "spread_coverage.py"), str(REPO / "README.md")],
                         capture_output=True, text=True)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [
        f"error: cannot read {REPO / 'README.md'} as a checkpoint (UnpicklingError); give the `.cleanrl_model` "
        "files that --save-model writes"]
