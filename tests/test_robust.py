"""What a run survives and what it refuses: killed and hung env workers, a disk that cannot take a
checkpoint or TensorBoard's events, out-of-range flags, files that are not checkpoints, --cuda
without a GPU, --track without wandb."""

import dataclasses
import errno
import importlib
import importlib.util
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch

from common.checks import RANGES, Range, check_ranges, is_numeric
from common.config import PRESETS
from common.envs import MAX_FAILURES, EnvWorkerFailure, make_vec_env
from conftest import (REPO, SCRIPTS, gone, read_scalars, run_dir, run_script, start_script, tiny, wait_until,
                      workers_of)


def outside(rule: Range):
    """A value just outside `rule` (below it where it has a lower bound)."""
    if rule.low > -math.inf:
        return rule.low if rule.open_low else rule.low - 1
    return rule.high if rule.open_high else rule.high + 1


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_numeric_flag_has_a_range_that_is_enforced(script, capsys):
    """Each numeric field of the script's Args has a range in common/checks.py; every preset is
    inside it; a value outside it (NaN too) stops with one line naming flag, value and range."""
    module = importlib.import_module(script.removesuffix(".py"))
    for preset in PRESETS[module.ALGO].values():
        check_ranges(dataclasses.replace(module.Args(), **preset))
    numeric = [f for f in dataclasses.fields(module.Args) if is_numeric(f)]
    assert len(numeric) >= 15
    for field in numeric:
        assert field.name in RANGES, f"{script}: --{field.name} has no range in common/checks.py"
        rule, flag = RANGES[field.name], "--" + field.name.replace("_", "-")
        bad = [(outside(rule),), ()] if field.type is not int and field.type is not float else [outside(rule)]
        if field.type is float:
            bad.append(float("nan"))
        for value in bad:
            with pytest.raises(SystemExit) as exit_:
                check_ranges(dataclasses.replace(module.Args(), **{field.name: value}))
            err = capsys.readouterr().err
            assert exit_.value.code == 2 and err.count("\n") == 1 and err.startswith(f"error: {flag} "), err
            assert str(rule) in err, err


def test_a_numeric_flag_without_a_range_is_a_programming_error():
    @dataclasses.dataclass
    class Args:
        new_rate: float = 0.1

    with pytest.raises(KeyError, match="new_rate has no range"):
        check_ranges(Args())


def not_a_checkpoint(path):
    path.write_text("not a checkpoint\n")


def zip_not_torch(path):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("hello.txt", "a zip archive, but not torch.save's")


def foreign_dict(path):
    torch.save({"weights": torch.zeros(3)}, path)


@pytest.mark.parametrize("make, message", [
    (not_a_checkpoint, "is not a checkpoint (not a file torch.save wrote)"),
    (zip_not_torch, "is not a readable checkpoint"),
    (foreign_dict, "is not a checkpoint of these scripts"),
])
def test_a_file_that_is_not_a_checkpoint_is_one_line(make, message, tmp_path):
    make(tmp_path / "file")
    result = run_script("happo.py", "--resume", "file", cwd=tmp_path, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: --resume file ") and message in result.stderr, result.stderr


@pytest.mark.parametrize("script", ["happo.py", "hatd3.py"])  # the two ways the scripts load states
def test_a_checkpoint_of_other_shapes_is_one_line(script, checkpoint_of, tmp_path):
    """Flags that change the networks' shapes are refused before anything loads; a checkpoint
    whose weights do not fit its own flags (edited, or from other code) stops as it loads."""
    result = run_script(script, *tiny(script), "--hidden-sizes", "16", "--resume", str(checkpoint_of(script)),
                        cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: --hidden-sizes 16 differs from the checkpoint's 128 128 "), result.stderr
    state = torch.load(checkpoint_of(script), weights_only=True)
    state["args"]["hidden_sizes"] = (16,)
    torch.save(state, tmp_path / "edited.cleanrl_model")
    result = run_script(script, *tiny(script), "--resume", "edited.cleanrl_model", cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "does not fit this run's networks" in result.stderr and "size mismatch" in result.stderr, result.stderr


def test_a_checkpoint_of_another_script_is_one_line(checkpoint_of, tmp_path):
    result = run_script("haa2c.py", "--resume", str(checkpoint_of("happo.py")), cwd=tmp_path)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "is a happo checkpoint for mpe_spread, not haa2c for mpe_spread" in result.stderr, result.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_one_line():
    result = run_script("happo.py", "--cuda", cwd=REPO, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("error: --cuda: no usable GPU") and "leave out --cuda" in result.stderr


# ---- a failed env worker ----

def test_an_engine_that_raises_is_restarted_and_failures_in_a_row_end_it(capsys):
    """mpe2 raises on an action outside the action space. Each failure names the worker; recover()
    restarts it, and the envs step on; the MAX_FAILURES-th failure at one step raises instead,
    counted afresh once the step has moved on."""
    assert MAX_FAILURES == 3
    envs = make_vec_env("mpe_speaker_listener", 2, num_workers=2)
    bad, good = np.zeros((2, 2), dtype=np.float32), np.zeros((2, 2), dtype=np.float32)
    bad[1, 0] = 99  # the speaker has 3 actions
    try:
        envs.reset(seed=0)
        for failure, step in enumerate([7, 8, 8, 8]):
            with pytest.raises(EnvWorkerFailure, match="^env worker 1 raised AssertionError") as err:
                envs.step(bad)
            if failure < 3:
                obs, _ = envs.recover(err.value, step)
                assert obs.shape == (2, 14)
                assert envs.step(good)[0].shape == (2, 14)
            else:
                with pytest.raises(EnvWorkerFailure, match="at step 8, the last of 3 failures in a row"):
                    envs.recover(err.value, step)
    finally:
        envs.close()
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert [re.search(r"at step (\d+).*\(failure (\d) in a row", w).groups() for w in warnings] == [
        ("7", "1"), ("8", "1"), ("8", "2")]


def start(tmp_path, *args):
    return start_script("happo.py", "--num-envs", "2", "--num-workers", "2", "--torch-threads", "1",
                        "--log-interval", "1", *args, cwd=tmp_path, start_new_session=True)


def kill_one_worker(proc, seen: dict, signum=signal.SIGKILL) -> None:
    """Send `signum` (SIGKILL; SIGSTOP: a hung worker) to one of the run's own workers not
    signalled before (waits for a new one to exist); `seen`: every worker of the run seen so far
    -> whether it was signalled."""
    fresh = wait_until(lambda: [p for p in workers_of(proc) if not seen.setdefault(p, False)], 60, "a worker to kill",
                       every=0.01)
    seen[fresh[0]] = True
    fresh[0].send_signal(signum)


def read_until(proc, pattern: str, lines: list) -> re.Match:
    for line in proc.stdout:
        lines.append(line)
        if match := re.search(pattern, line):
            return match
    raise AssertionError(f"{pattern!r} never came:\n{''.join(lines)[-3000:]}")


# (the budget, the line after which a worker is killed, the steps the losses are logged at)
KILLED_RUNS = {
    # football: 4 rollouts of 2 engines x 20 steps in 2 workers, no evaluation
    "football": (["--env", "grf_ca_easy", "--num-steps", "20", "--total-timesteps", "160", "--eval-interval", "0"],
                 "iter 2/4", [40, 80, 120, 160]),
    # mpe2: 10 iterations of 2 envs x 25 steps, evaluation of 60 episodes every 2 (the kill may
    # come during a rollout or an evaluation)
    "mpe2": (["--env", "mpe_speaker_listener", "--env-backend", "pettingzoo", "--num-steps", "25",
              "--total-timesteps", "500", "--eval-interval", "2", "--eval-episodes", "60", "--num-eval-envs", "2"],
             "iter 1/10", list(range(50, 501, 50))),
}


# what the run says of a worker killed, and of one stopped (hung) until --worker-timeout 10 s ends it
FAILED = {
    signal.SIGKILL: re.compile(r"warning: env worker (\d) exited with status -9 \(SIGKILL\) at step (\d+); restarting it"),
    signal.SIGSTOP: re.compile(r"warning: env worker (\d) did not answer within 10 s \(--worker-timeout\) and was "
                               r"killed at step (\d+); restarting it"),
}


@pytest.mark.parametrize("signum", FAILED, ids=["killed", "hung"])
@pytest.mark.parametrize("kind", KILLED_RUNS)
def test_a_killed_or_hung_worker_is_restarted_and_the_run_finishes(kind, signum, tmp_path):
    if kind == "football":
        pytest.importorskip("gfootball", reason="Google Research Football is installed by `bash setup.sh`")
    args, after, steps = KILLED_RUNS[kind]
    proc, lines, seen = start(tmp_path, *args, "--worker-timeout", "10"), [], {}
    try:
        read_until(proc, after, lines)
        kill_one_worker(proc, seen, signum)
        out = "".join(lines) + proc.communicate(timeout=120)[0]
    finally:
        proc.kill()
    assert proc.returncode == 0, out[-3000:]
    assert len(FAILED[signum].findall(out)) == 1 and out.count("warning:") == 1, out[-3000:]
    assert f"iter {len(steps)}/{len(steps)} step {steps[-1]} " in out, out[-3000:]
    assert gone(list(seen))  # the hung worker too: killed, not left behind
    scalars = read_scalars(run_dir(tmp_path))
    for tag in ("losses/value_loss", "losses/policy_loss"):
        assert [step for step, _ in scalars[tag]] == steps, tag  # one update per rollout, none lost or doubled
        assert all(math.isfinite(value) for _, value in scalars[tag]), tag


def test_three_failures_in_a_row_stop_the_run_with_a_checkpoint_and_no_process(tmp_path):
    """Killed after the first update, then each new worker as soon as it exists: exit 1, one
    error line, the first update's checkpoint, no worker left."""
    proc, lines, seen = start(tmp_path, "--env", "mpe_speaker_listener", "--num-steps", "500",
                                "--total-timesteps", "100000", "--eval-interval", "0"), [], {}
    try:
        read_until(proc, "iter 1/", lines)
        for failure in range(3):
            kill_one_worker(proc, seen)
            if failure < 2:
                read_until(proc, FAILED[signal.SIGKILL].pattern, lines)
        out = "".join(lines) + proc.communicate(timeout=60)[0]
    finally:
        proc.kill()
    assert proc.returncode == 1, out[-3000:]
    assert len(FAILED[signal.SIGKILL].findall(out)) == 2, out[-3000:]
    error = out.strip().splitlines()[-1]
    assert re.fullmatch(r"error: env worker \d exited with status -9 \(SIGKILL\) at step 1000, the last of 3 "
                        r"failures in a row with no training between them; checkpoint saved to runs/.*\.cleanrl_model "
                        r"\(of the last update\)", error), error
    (ckpt,) = run_dir(tmp_path).glob("*.cleanrl_model")
    assert torch.load(ckpt, weights_only=True)["global_step"] == 1000  # the first update's
    assert sum(seen.values()) == 3 and gone(list(seen))
    # and none of the workers it started (some never seen here, if the run ended first) is left
    assert gone([p for p in psutil.process_iter() if in_session(p, proc.pid)])


def in_session(process, sid: int) -> bool:
    try:
        return os.getsid(process.pid) == sid
    except OSError:
        return False


# ---- a disk that cannot take what the run writes ----

def resumable_run_dir(tmp_path, checkpoint_of, script: str = "happo.py") -> Path:
    """runs/X/ holding a copy of the script's TINY checkpoint (step 100): a run resumed from it
    goes on writing there, so a test can prepare the files it will write."""
    directory = tmp_path / "runs" / "mpe_spread__happo__1__1"
    directory.mkdir(parents=True)
    shutil.copyfile(checkpoint_of(script), directory / "happo.cleanrl_model")
    return directory


def test_a_full_disk_costs_one_checkpoint_and_the_next_interval_writes_it(tmp_path, checkpoint_of):
    """The checkpoint's temporary file is /dev/full, which refuses every write with ENOSPC, as a
    full disk does: the first periodic checkpoint fails with one warning line (torch's own words
    and the free space), training goes on, and the next interval writes it."""
    directory = resumable_run_dir(tmp_path, checkpoint_of)
    (directory / "happo.cleanrl_model.tmp").symlink_to("/dev/full")
    result = run_script("happo.py", "--resume", str(directory / "happo.cleanrl_model"), "--total-timesteps", "200",
                        "--checkpoint-interval", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    (warning,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert re.fullmatch(r"warning: could not write the checkpoint \S*runs/\S+/happo.cleanrl_model \(.*unexpected pos.*; "
                        r"[\d.]+ \w+ free there\); the previous one there is kept; training goes on", warning), warning
    assert "iter 4/4 step 200" in result.stdout and "checkpoint saved to" in result.stdout
    assert torch.load(directory / "happo.cleanrl_model", weights_only=True)["global_step"] == 200
    assert sorted(p.name for p in directory.iterdir() if "cleanrl_model" in p.name) == ["happo.cleanrl_model"]


def test_a_final_checkpoint_that_cannot_be_written_ends_the_run_with_one_line(tmp_path, checkpoint_of):
    """Every write fails (the temporary file's path is taken by a directory): each periodic
    checkpoint warns, training reaches its budget, and the final one ends the run with one
    error line and status 1; the previous checkpoint is whole."""
    directory = resumable_run_dir(tmp_path, checkpoint_of)
    (directory / "happo.cleanrl_model.tmp").mkdir()
    result = run_script("happo.py", "--resume", str(directory / "happo.cleanrl_model"), "--total-timesteps", "200",
                        "--checkpoint-interval", "1", cwd=tmp_path)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-3000:]
    assert "iter 4/4 step 200" in result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 3 and all(line.startswith("warning: could not write the checkpoint") for line in lines[:2])
    assert re.fullmatch(r"error: could not write the checkpoint \S*runs/\S+/happo.cleanrl_model \(.*Is a directory.*\); "
                        r"the previous one there is kept", lines[2]), lines[2]
    assert torch.load(directory / "happo.cleanrl_model", weights_only=True)["global_step"] == 100


def test_tensorboard_writes_that_fail_cost_their_scalars_and_logging_comes_back(tmp_path, capsys, monkeypatch):
    """TensorBoard's writer thread meets ENOSPC: one warning line, nothing raised; after `retry`
    seconds a new writer in the same directory logs again."""
    from tensorboard.summary.writer.record_writer import RecordWriter

    from common.runs import Writer

    def full(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(RecordWriter, "write", full)
    writer = Writer(str(tmp_path / "run"), retry=0.5)
    for step in range(1, 6):
        writer.add_scalar("charts/x", step, step)
        time.sleep(0.05)
    monkeypatch.undo()
    time.sleep(0.6)
    for step in range(6, 9):
        writer.add_scalar("charts/x", step, step)
    writer.close()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.match(r"warning: TensorBoard logging to \S+ failed \(No space left on device; "
                                              r"[\d.]+ \w+ free there\); training goes on", err), err
    assert [step for step, _ in read_scalars(tmp_path / "run")["charts/x"]] == [6, 7, 8]


def test_track_without_wandb_is_one_line_before_torch_loads(tmp_path):
    if importlib.util.find_spec("wandb") is not None:
        pytest.skip("wandb is installed here")
    result = subprocess.run([sys.executable, "-X", "importtime", str(REPO / "happo.py"), "--track"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    imported = [line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")]
    err = "".join(line + "\n" for line in result.stderr.splitlines() if not line.startswith("import time:"))
    assert result.returncode == 2 and err == ("error: --track logs to Weights and Biases, which is not installed; "
                                              "install it with `pip install wandb`\n"), err
    assert "tyro" in imported and "torch" not in imported
