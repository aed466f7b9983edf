"""benchmarks/sweep.py: the runs a sweep expands to and their commands, skip and resume, the CSV
against the TensorBoard scalars it comes from, Ctrl-C and resume of a local sweep, and a SLURM
job array (with the time limit's SIGTERM) on a one-node cluster that the tests start."""

import errno
import fcntl
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from benchmarks import sweep
from benchmarks.sweep import Run, Settings
from conftest import REPO, TINY, read_scalars, wait_until

SWEEP = str(REPO / "benchmarks" / "sweep.py")
TRAIN, EVAL, SPS = "charts/episodic_return", "eval/episodic_return", "charts/SPS"
# 100 iterations of 2 envs x 25 steps (a few seconds): long enough to be interrupted mid-run
LONG = ["--num-envs", "2", "--num-steps", "25", "--total-timesteps", "5000", "--eval-interval", "25",
        "--eval-episodes", "2", "--num-eval-envs", "2", "--log-interval", "1"]


def sweep_args(tmp_path, *args: str, seeds=("1",), flags=TINY, name="s") -> list[str]:
    """A happo.py sweep on mpe_spread, its directories and results under tmp_path."""
    return [sys.executable, SWEEP, "--scripts", "happo.py", "--envs", "mpe_spread", "--seeds", *seeds,
            "--name", name, f"--flags={' '.join(flags)}", "--sweeps-dir", str(tmp_path / "sweeps"),
            "--results-dir", str(tmp_path / "results"), *args]


def run_sweep(tmp_path, *args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(sweep_args(tmp_path, *args, **kw), capture_output=True, text=True, timeout=300)


def run_dir(tmp_path, seed=1, name="s") -> Path:
    return tmp_path / "sweeps" / name / f"mpe_spread__happo__{seed}"


def csv_of(tmp_path, seed=1) -> dict[str, np.ndarray]:
    return sweep.read_results(sweep.results_path(tmp_path / "results", "mpe_spread", "happo", seed))


def segments(directory: Path) -> list[dict]:
    """The TensorBoard scalars of each process that logged to a run, oldest first: one event file
    each (a resumed run goes on in its run directory)."""
    files = sorted(directory.glob(f"runs/*/{sweep.EVENTS}"), key=lambda f: int(f.name.split(".")[3]))
    return [read_scalars(f) for f in files]


def settings(tmp_path, cpus=1) -> Settings:
    return Settings(sys.executable, cpus, checkpoint_interval=7, results_dir=str(tmp_path / "results"), bin=50)


# ---- the runs and their commands ----

def test_expansion_skips_what_a_script_cannot_run_and_appends_the_sweep_flags(tmp_path, capsys):
    runs = sweep.expand(["happo.py", "hatd3.py"], ["mpe_spread", "mpe_spread_continuous"], [1, 2],
                        ["--total-timesteps", "1000"], tmp_path)
    assert [(r.script, r.env, r.seed) for r in runs] == [
        ("happo.py", "mpe_spread", 1), ("happo.py", "mpe_spread", 2), ("happo.py", "mpe_spread_continuous", 1),
        ("happo.py", "mpe_spread_continuous", 2), ("hatd3.py", "mpe_spread_continuous", 1),
        ("hatd3.py", "mpe_spread_continuous", 2)]
    assert capsys.readouterr().out == "skipping hatd3.py on mpe_spread: HATD3 needs continuous actions\n"
    assert runs[4].path == tmp_path / "mpe_spread_continuous__hatd3__1"

    assert sweep.command(runs[4], settings(tmp_path, cpus=2)) == [
        sys.executable, str(REPO / "hatd3.py"), "--env", "mpe_spread_continuous", "--seed", "1",
        "--total-timesteps", "1000", "--torch-threads", "2", "--num-workers", "2", "--checkpoint-interval", "7",
        "--save-model"]
    # what the user's flags set, the sweep leaves alone
    own = Run("happo.py", "mpe_spread", 1, ("--torch-threads=3", "--checkpoint-interval", "0", "--no-save-model"),
              str(tmp_path))
    assert sweep.command(own, settings(tmp_path))[6:] == [*own.flags, "--num-workers", "1"]


def test_array_ranges():
    assert sweep.array_ranges([0, 1, 2, 5, 7, 8]) == "0-2,5,7-8" and sweep.array_ranges([3]) == "3"


def test_pool_size_follows_cores_and_memory(monkeypatch):
    mpe = Run("happo.py", "mpe_spread", 1, (), "x")
    football = Run("happo.py", "grf_ca_hard", 1, (), "y")
    monkeypatch.setattr(sweep, "CORES", 16)
    monkeypatch.setattr(sweep, "available_memory_mb", lambda: 24_000)
    assert sweep.pool_size([mpe] * 20, cpus=2)[0] == 8  # by cores
    assert sweep.pool_size([mpe] * 20, cpus=1)[0] == 16
    # the grf_ca_hard preset (50 + 50 engines) in one worker: about 6.8 GB each
    assert sweep.memory_mb(football, 1) > 6_000 and sweep.pool_size([*[mpe] * 5, football], cpus=1)[0] == 3
    assert sweep.pool_size([mpe] * 3, cpus=1)[0] == 3  # never more than the runs


def test_time_left_takes_each_running_runs_own_estimate_and_each_scripts_own_length(tmp_path):
    def run(script, seed, log=None):
        r = Run(script, "mpe_spread", seed, (), str(tmp_path / f"{script}{seed}"))
        r.path.mkdir()
        if log:
            (r.path / sweep.LOG).write_text(log)
        return r

    now = time.time()
    pool = sweep.Pool([], settings(tmp_path), size=2)
    pool.durations = [(run("happo.py", 1), 150.0)]
    slow = run("hatrpo.py", 1, "iter 5/10 step 50 SPS 9 elapsed 0:00:50 left 0:04:00\niter 6/10 step 60 left 0:05:00\n")
    pool.running = {slow: (None, now - 50), run("haa2c.py", 1, "no progress line yet"): (None, now)}
    pool.pending = [run("hatrpo.py", 2), run("hatrpo.py", 3), run("happo.py", 2), run("mappo.py", 1)]
    # running: 300 s left (its last line), the haa2c run the mean of all, (150 + 350) / 2;
    # pending: hatrpo as long as the running one projects (50 + 300), happo 150, mappo the mean
    assert pool.time_left() == pytest.approx((300 + 250 + 2 * 350 + 150 + 250) / 2, abs=1)
    assert sweep.reported_left(run("mappo.py", 2, "iter 1/9 left 1 day, 2:03:04\n")) == 93784


@pytest.mark.parametrize("args, named", [
    (["--scripts", "nope.py", "--envs", "mpe_spread", "--seeds", "1"], "valid scripts: happo.py, happo_rga.py"),
    (["--scripts", "happo.py", "--envs", "mpe_nope", "--seeds", "1"], "valid envs: mpe_spread, mpe_spread_continuous"),
    (["--scripts", "happo.py", "--envs", "mpe_spread", "--seeds", "one"], "--seeds: invalid int value"),
    (["--scripts", "happo.py", "--envs", "mpe_spread", "--seeds", "1", "--flags=--seed 2"], "may not set --seed"),
    (["--scripts", "happo.py", "--envs", "mpe_spread", "--seeds", "1", "--workers", "0"],
     "--workers 0 is out of range; it must be >= 1"),
    (["--scripts", "happo.py", "--envs", "mpe_spread", "--seeds", "-1"], "--seeds -1 is out of range; it must be in [0, "),
])
def test_bad_arguments_stop_with_one_line(args, named, tmp_path):
    result = subprocess.run([sys.executable, SWEEP, *args, "--sweeps-dir", str(tmp_path)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2 and named in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr
    assert list(tmp_path.iterdir()) == []


def test_complete_runs_are_skipped_and_interrupted_ones_resume_from_the_newest_checkpoint(tmp_path):
    done, interrupted, new = (run_dir(tmp_path, seed) for seed in (1, 2, 3))
    done.mkdir(parents=True)
    (done / "done").touch()
    for segment, modified in [("mpe_spread__happo__2__100", 2e9), ("mpe_spread__happo__2__200", 1e9)]:
        checkpoint = interrupted / "runs" / segment / "happo.cleanrl_model"
        checkpoint.parent.mkdir(parents=True)
        checkpoint.touch()
        os.utime(checkpoint, (modified, modified))  # the newest is not the last by name

    result = run_sweep(tmp_path, "--dry-run", seeds=("1", "2", "3"))
    assert result.returncode == 0, result.stderr
    assert "3 runs in" in result.stdout and "1 complete, 2 to run (1 from a checkpoint)" in result.stdout
    commands = {line.split(":")[0]: line for line in result.stdout.splitlines() if line.startswith("mpe_spread__")}
    assert set(commands) == {new.name, interrupted.name}
    newest = (interrupted / "runs" / "mpe_spread__happo__2__100" / "happo.cleanrl_model").resolve()
    assert commands[interrupted.name].endswith(f"--resume {newest}")
    assert "--resume" not in commands[new.name]
    assert not new.exists()  # a dry run starts nothing


def test_until_stops_each_run_part_way_and_a_later_command_goes_on(tmp_path):
    """--until 60 of a 200-step budget (TINY batch 50): the run stops at step 100 and is done to 60;
    the same command skips it; --until 150, then no --until, take it to step 150 and to its end."""
    twice = [*TINY[:TINY.index("--total-timesteps")], "--total-timesteps", "200",
             *TINY[TINY.index("--total-timesteps") + 2:]]
    steps_of = {}
    for until, expect in [("60", "1 to run"), ("60", "1 complete, 0 to run"), ("150", "1 to run (1 from"),
                          ("0", "1 to run (1 from")]:
        result = run_sweep(tmp_path, "--bin", "50", "--until", until, flags=twice)
        assert result.returncode == 0 and expect in result.stdout, result.stdout + result.stderr
        steps_of[until] = list(csv_of(tmp_path)["step"])
        assert json.loads((run_dir(tmp_path) / "done").read_text())["until"] == int(until)
    assert steps_of["60"] == [50, 100] and steps_of["150"] == [50, 100, 150] and steps_of["0"] == [50, 100, 150, 200]
    log = (run_dir(tmp_path) / "log.txt").read_text()
    commands = [line for line in log.splitlines() if line.startswith("# ")]  # the second --until 60 ran nothing
    assert len(commands) == 3 and "--stop-at 60" in commands[0] and "--stop-at 150" in commands[1]
    assert "--stop-at" not in commands[2] and "stopped at step 100 (--stop-at 60)" in log
    assert "iter 4/4 step 200" in log and log.count("resumed from") == 2


def test_a_run_going_on_in_another_process_is_left_alone(tmp_path):
    directory = run_dir(tmp_path)
    directory.mkdir(parents=True)
    with open(directory / "lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a run of another sweep holds it
        result = run_sweep(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "skipped mpe_spread__happo__1: another process is running it" in result.stdout
    assert not (directory / "log.txt").exists()


# ---- the CSV ----

def test_a_tiny_run_exports_the_scalars_it_logged(tmp_path):
    result = run_sweep(tmp_path, "--bin", "50")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "done mpe_spread__happo__1" in result.stdout and "1 done, 0 running, 0 left, 0 failed" in result.stdout
    directory = run_dir(tmp_path)
    assert (directory / "done").exists() and "iter 2/2 step 100" in (directory / "log.txt").read_text()
    (scalars,) = segments(directory)
    csv = csv_of(tmp_path)
    assert list(csv["step"]) == [50, 100]
    for row, (lo, hi) in enumerate([(0, 50), (50, 100)]):
        def within(tag):
            return [v for s, v in scalars[tag] if lo < s <= hi]
        assert csv["train"][row] == pytest.approx(np.mean(within(TRAIN)), abs=1e-4)
        assert csv["eval"][row] == pytest.approx(within(EVAL)[-1], abs=1e-4)
        assert csv["sps"][row] == round(within(SPS)[-1])
    assert 0 < csv["wall_time"][0] <= csv["wall_time"][1] < 60

    again = run_sweep(tmp_path, "--bin", "50")  # complete: nothing runs
    assert again.returncode == 0 and "1 complete, 0 to run" in again.stdout and len(segments(directory)) == 1

    # not complete, with a checkpoint at step 50: what it logged after that is trained again when
    # it goes on, so its CSV ends there
    import torch

    checkpoint = sweep.newest_checkpoint(directory)
    torch.save({**torch_load(checkpoint), "global_step": 50}, checkpoint)
    (directory / "done").unlink()
    assert run_sweep(tmp_path, "--bin", "50", "--export-only").returncode == 0
    cut = csv_of(tmp_path)
    assert list(cut["step"]) == [50] and cut["train"][0] == csv["train"][0]
    other = run_sweep(tmp_path, flags=[*TINY, "--learning-rate", "1e-3"])
    assert other.returncode == 2 and "give this sweep another --name" in other.stderr


def test_segments_merge_by_step_and_count_only_training_time(tmp_path):
    """A run logged to step 150 and was resumed from its checkpoint at step 100, 15 minutes later:
    the second segment replaces the first from its first step on; the 15 minutes do not count."""
    def rows(*r):
        return np.array(r, dtype=float)

    first = (1000.0, {TRAIN: rows((50, 1010, -80), (100, 1020, -70), (150, 1030, -65)), EVAL: rows((100, 1021, -75)),
                      SPS: rows((50, 1010, 500), (100, 1020, 510), (150, 1030, 520))})
    second = (1900.0, {TRAIN: rows((150, 1912, -60), (200, 1914, -50)), EVAL: rows((200, 1915, -40)),
                       SPS: rows((150, 1912, 700), (200, 1914, 710))})
    merged = sweep.merge_segments([second, first], (TRAIN, EVAL, SPS))  # in any order: by start time
    assert merged[TRAIN].tolist() == [[50, 10, -80], [100, 20, -70], [150, 42, -60], [200, 44, -50]]
    rows = sweep.bin_rows(merged, TRAIN, EVAL, bin_size=100)
    assert rows == [(100, -75.0, -75.0, 21.0, 510.0), (200, -55.0, -40.0, 45.0, 710.0)]

    sweep.write_csv(tmp_path / "x.csv", [*rows, (300, -50.0, np.nan, 50.0, 720.0)])
    back = sweep.read_results(tmp_path / "x.csv")
    assert back["step"].tolist() == [100, 200, 300] and back["wall_time"].tolist() == [21, 45, 50]
    assert back["eval"][:2].tolist() == [-75, -40] and np.isnan(back["eval"][2])


def test_a_carried_csv_and_this_machine_share_the_bin_it_resumed_in(tmp_path):
    """Elsewhere, a run logged to step 200 and kept its checkpoint at 150; here it resumes at 150
    (iterations of 25 steps) and logs as many episodes in (150, 200] as elsewhere. The bin
    (100, 200] keeps the carried evaluation, which this machine did not repeat, and its training
    mean weighs the two halves equally; training time counts on from the carried bin's."""
    def rows(*r):
        return np.array(r, dtype=float).reshape(-1, 3)

    sweep.write_csv(tmp_path / "carried.csv", [(100, -70.0, -75.0, 20.0, 500.0), (200, -60.0, -55.0, 30.0, 510.0)])
    here = {TRAIN: rows(*[(s, s - 150, -40) for s in (160, 170, 180, 190, 200, 210)]), EVAL: rows((250, 101, -30)),
            SPS: rows((175, 25, 700), (200, 50, 710), (225, 75, 720), (250, 100, 730))}
    before, merged, offset = sweep.carry_on(sweep.read_results(tmp_path / "carried.csv"), here, (TRAIN, EVAL, SPS), 100)
    assert before == [(100, -70.0, -75.0, 20.0, 500.0)] and offset == 30.0
    assert sweep.bin_rows(merged, TRAIN, EVAL, bin_size=100) == [(200, -50.0, -55.0, 50.0, 710.0),
                                                                  (300, -40.0, -30.0, 101.0, 730.0)]


def test_results_that_cannot_be_written_are_one_warning_and_the_run_is_not_done(tmp_path, capsys, monkeypatch):
    run = Run("happo.py", "mpe_spread", 1, (), str(tmp_path / "mpe_spread__happo__1"))
    run.path.mkdir()

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sweep, "export", full)
    sweep.finish(run, 0, settings(tmp_path))
    assert capsys.readouterr().out == ("warning: could not write the results of mpe_spread__happo__1 ([Errno 28] No "
                                       "space left on device); the sweep goes on, and the same command or "
                                       "--export-only writes them later\n")
    assert not (run.path / sweep.DONE).exists()  # `done` means the CSV is there


# ---- a local sweep: Ctrl-C, then the same command ----

def logged(directory: Path, text: str) -> bool:
    log = directory / "log.txt"
    return log.exists() and text in log.read_text()


def locked(directory: Path) -> bool:
    """Whether a process holds the run directory's lock."""
    with open(directory / "lock") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True


def check_resumed_curve(directory: Path, csv: dict, seconds: float) -> None:
    """Two segments, the second from the first's checkpoint; the CSV has every bin, its training
    values from the first segment before the second's first step and from the second after it."""
    log = (directory / "log.txt").read_text()
    assert "checkpoint saved" in log and "resumed from" in log and "Traceback" not in log, log[-3000:]
    one, two = segments(directory)
    assert max(s for s, _ in one[TRAIN]) < 5000, "the first segment was not interrupted"
    start = min(s for tag in (TRAIN, EVAL, SPS) for s, _ in two.get(tag, []))
    train = [(s, v) for s, v in one[TRAIN] if s < start] + two[TRAIN]
    assert list(csv["step"]) == [1000, 2000, 3000, 4000, 5000]
    for row, hi in enumerate(csv["step"]):
        assert csv["train"][row] == pytest.approx(np.mean([v for s, v in train if hi - 1000 < s <= hi]), abs=1e-4)
    assert np.all(np.diff(csv["wall_time"]) >= 0) and 0 < csv["wall_time"][-1] <= seconds


def test_ctrl_c_stops_every_run_with_a_checkpoint_and_the_same_command_resumes(tmp_path):
    """Two runs at a time, three in all: Ctrl-C stops the two running ones with checkpoints, and
    the sweep exits without starting the third; the same command runs all three to the end."""
    args = sweep_args(tmp_path, "--bin", "1000", "--workers", "2", seeds=("1", "2", "3"), flags=LONG)
    began = time.time()
    # its own process group, as a terminal's foreground job: Ctrl-C reaches the group
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_until(lambda: all(logged(run_dir(tmp_path, seed), "iter 3/") for seed in (1, 2)), 120, "two runs")
        assert locked(run_dir(tmp_path, 1)) and locked(run_dir(tmp_path, 2))
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    first = time.time() - began
    assert proc.returncode == 130, out + err
    assert "SIGINT: stopping 2 runs" in out and "to go on, give the same command again" in out
    for seed in (1, 2):
        assert not (run_dir(tmp_path, seed) / "done").exists() and not locked(run_dir(tmp_path, seed))
        assert logged(run_dir(tmp_path, seed), "interrupted after iteration")  # once: no traceback below
    assert not run_dir(tmp_path, 3).exists()

    began = time.time()
    again = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "3 to run (2 from a checkpoint)" in again.stdout and "resume mpe_spread__happo__1 from runs/" in again.stdout
    assert (run_dir(tmp_path, 3) / "done").exists()
    for seed in (1, 2):
        assert (run_dir(tmp_path, seed) / "done").exists()
        check_resumed_curve(run_dir(tmp_path, seed), csv_of(tmp_path, seed), first + time.time() - began)


def test_a_new_clone_goes_on_from_the_kept_checkpoint_and_csv(tmp_path):
    """What a machine leaves in results/ (the CSV, the kept checkpoint) is all a new clone needs:
    the same command there resumes from the checkpoint and continues the CSV, and a sweep with
    other --flags does not take that checkpoint for its own."""
    twice = [*TINY[:TINY.index("--total-timesteps")], "--total-timesteps", "200",
             *TINY[TINY.index("--total-timesteps") + 2:]]  # 4 iterations; the first 2 ran "elsewhere"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    first = subprocess.run([sys.executable, str(REPO / "happo.py"), *TINY, "--save-model"], cwd=elsewhere,
                           capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr[-2000:]
    run = Run("happo.py", "mpe_spread", 1, tuple(twice), str(run_dir(tmp_path)))
    kept = sweep.kept_checkpoint(run, settings(tmp_path))
    kept.parent.mkdir(parents=True)
    shutil.copyfile(next(elsewhere.glob("runs/*/happo.cleanrl_model")), kept)
    kept.with_suffix(".json").write_text(json.dumps({"flags": twice}))
    carried = [(50, -60.0, math.nan, 5.0, 40.0), (100, -55.0, -50.0, 10.0, 41.0)]
    sweep.write_csv(sweep.results_path(tmp_path / "results", "mpe_spread", "happo", 1), carried)

    other = run_sweep(tmp_path, "--dry-run", name="other")  # TINY: other flags
    assert "0 from a checkpoint" in other.stdout and "--resume" not in other.stdout, other.stdout

    result = run_sweep(tmp_path, "--bin", "50", flags=twice)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 to run (1 from a checkpoint)" in result.stdout and f"from {kept}" in result.stdout
    assert "resumed from" in (run_dir(tmp_path) / "log.txt").read_text()
    csv = csv_of(tmp_path)
    assert list(csv["step"]) == [50, 100, 150, 200]
    np.testing.assert_array_equal(csv["train"][:2], [-60.0, -55.0])  # the carried rows, unchanged
    (segment,) = segments(run_dir(tmp_path))
    assert csv["train"][3] == pytest.approx(np.mean([v for s, v in segment[TRAIN] if 150 < s <= 200]), abs=1e-4)
    assert csv["wall_time"][2] > 10.0  # training time counts on from the carried 10 s
    assert torch_load(kept)["global_step"] == 200  # the kept checkpoint follows the run


def test_git_commits_the_kept_checkpoints():
    """The kept checkpoint is what a new clone goes on from: a .gitignore rule that matched it
    (say *.cleanrl_model) would leave only the CSV in the repository, and the run would start over."""
    run = Run("happo.py", "grf_ca_easy", 1, (), "sweeps/s/grf_ca_easy__happo__1")
    kept = sweep.kept_checkpoint(run, Settings(sys.executable, 1, 25, "results", 50))
    ignored = subprocess.run(["git", "check-ignore", "--no-index", "-q", str(kept)], cwd=REPO)
    assert ignored.returncode == 1, f"git ignores {kept} (git check-ignore -v says which rule)"


def torch_load(path):
    import torch

    return torch.load(path, weights_only=True)


# ---- SLURM: a one-node cluster of our own ----

SLURM_CONF = """\
ClusterName=sweeptest
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={d}/munge.socket
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
{node} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_daemon(pid_file: Path) -> None:
    if pid_file.exists():
        pid = int(pid_file.read_text())
        try:
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.1)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """munged, slurmctld and slurmd for this machine as one node (`slurmd -C`: its name, CPUs and
    memory), with their key, sockets, state and logs in a temporary directory; SLURM_CONF points
    sbatch (and the sweep) at them. Stopped at the end."""
    if not all(shutil.which(d) for d in ("munged", "slurmctld", "slurmd", "sbatch")):
        pytest.skip("SLURM is installed by `bash setup.sh` (slurm-wlm, munge)")
    if os.geteuid() != 0:
        pytest.skip("slurmd runs the jobs: it needs root")
    d = tmp_path_factory.mktemp("slurm")
    (d / "munge.key").write_bytes(os.urandom(1024))
    (d / "munge.key").chmod(0o600)
    node = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout.splitlines()[0]
    conf = d / "slurm.conf"
    conf.write_text(SLURM_CONF.format(host=node.split()[0].split("=")[1], node=node, d=d, ctld_port=free_port(),
                                      slurmd_port=free_port()))
    for sub in ("state", "spool"):
        (d / sub).mkdir()
    old_conf, os.environ["SLURM_CONF"] = os.environ.get("SLURM_CONF"), str(conf)
    try:
        subprocess.run(["munged", "--force", f"--socket={d}/munge.socket", f"--key-file={d}/munge.key",
                        f"--log-file={d}/munged.log", f"--pid-file={d}/munged.pid", f"--seed-file={d}/munged.seed"],
                       check=True)
        subprocess.run(["slurmctld"], check=True)
        subprocess.run(["slurmd"], check=True)
        wait_until(lambda: subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True).stdout.strip()
                   == "idle", 60, f"the node to be idle (logs in {d})")
        yield d
    finally:
        subprocess.run(["scancel", "--user", "root"], capture_output=True)
        for daemon in ("slurmd", "slurmctld", "munged"):
            stop_daemon(d / f"{daemon}.pid")
        if old_conf is None:
            del os.environ["SLURM_CONF"]
        else:
            os.environ["SLURM_CONF"] = old_conf


def submit(tmp_path, *args, **kw) -> str:
    """Submit a sweep with --slurm; its job id."""
    result = run_sweep(tmp_path, "--slurm", *args, **kw)
    assert result.returncode == 0 and "submitted job array" in result.stdout, result.stdout + result.stderr
    return result.stdout.split("submitted job array ")[1].split()[0]


def in_queue(job: str) -> bool:
    return bool(subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True).stdout.strip())


def wait_for_job(job: str, sweep_dir: Path, timeout: float = 180) -> None:
    try:
        wait_until(lambda: not in_queue(job), timeout, f"job {job}")
    except AssertionError:
        outputs = "\n".join(p.read_text()[-1500:] for p in sweep_dir.glob("**/*.out")) + "\n".join(
            p.read_text()[-1500:] for p in sweep_dir.glob("*/log.txt"))
        raise AssertionError(f"job {job} did not end in {timeout} s:\n{outputs}")


def test_slurm_job_array_runs_the_runs_not_yet_complete(slurm, tmp_path):
    sweep_dir = tmp_path / "sweeps" / "s"
    run_dir(tmp_path, 2).mkdir(parents=True)
    (run_dir(tmp_path, 2) / "done").touch()
    job = submit(tmp_path, "--bin", "50", seeds=("1", "2", "3"))
    script = (sweep_dir / "sweep.sbatch").read_text()
    assert "#SBATCH --array=0,2\n" in script and "#SBATCH --signal=B:TERM@120\n" in script
    assert json.loads((sweep_dir / "manifest.json").read_text())["runs"][2]["seed"] == 3
    wait_for_job(job, sweep_dir)
    for seed in (1, 3):
        assert (run_dir(tmp_path, seed) / "done").exists(), (run_dir(tmp_path, seed) / "log.txt").read_text()[-2000:]
        assert list(csv_of(tmp_path, seed)["step"]) == [50, 100]
        out = (sweep_dir / f"slurm-{job}_{seed - 1}.out").read_text()
        assert f"done mpe_spread__happo__{seed}" in out
    assert not sweep.results_path(tmp_path / "results", "mpe_spread", "happo", 2).exists()


def test_slurm_time_limit_signal_saves_a_checkpoint_and_a_resubmission_resumes(slurm, tmp_path):
    """`scancel --batch --signal=TERM` sends SIGTERM to the batch shell alone, as
    `--signal=B:TERM@120` does two minutes before the time limit."""
    sweep_dir, directory = tmp_path / "sweeps" / "s", run_dir(tmp_path)
    args = dict(flags=LONG)
    began = time.time()
    job = submit(tmp_path, "--bin", "1000", **args)
    wait_until(lambda: logged(directory, "iter 3/"), 120, "the run to train")
    subprocess.run(["scancel", "--batch", "--signal=TERM", job], check=True)
    wait_for_job(job, sweep_dir)
    first = time.time() - began
    assert "stopped mpe_spread__happo__1" in (sweep_dir / f"slurm-{job}_0.out").read_text()
    state = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True).stdout
    assert "ExitCode=130:0" in state, state  # non-zero: the task did not complete
    assert not (directory / "done").exists()

    began = time.time()
    job = submit(tmp_path, "--bin", "1000", **args)
    wait_for_job(job, sweep_dir)
    assert (directory / "done").exists(), (directory / "log.txt").read_text()[-2000:]
    check_resumed_curve(directory, csv_of(tmp_path), first + time.time() - began)
