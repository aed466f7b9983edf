"""Run a sweep of training runs, scripts x envs x seeds, on this machine or as a SLURM job array,
and export each run's learning curve to results/{env}/{algo}/seed{N}.csv.

    python benchmarks/sweep.py --scripts happo.py mappo.py --envs mpe_spread mpe_spread_continuous --seeds 1 2 3
    python benchmarks/sweep.py --scripts happo.py --envs mpe_spread --seeds 1 2 --name short \\
        --flags="--total-timesteps 2000000"
    python benchmarks/sweep.py --scripts happo.py happo_rga.py mappo.py --envs grf_ca_easy grf_ca_hard \\
        --seeds 1 2 3 --name grf --slurm --cpus-per-run 2 --time 2-00:00:00 --partition cpu
    python benchmarks/sweep.py --scripts happo.py mappo.py happo_rga.py --envs grf_ca_easy --seeds 1 \\
        --name grf --workers 2 --until 3000000   # the first 3M steps of the 25M-step preset
    python benchmarks/sweep.py --scripts happo.py --envs mpe_spread --seeds 1 2 --dry-run   # what would run
    python benchmarks/sweep.py --scripts happo.py --envs mpe_spread --seeds 1 2 --export-only

A combination that a script does not support (hatd3.py on a discrete or football id) is skipped
with one line. Each run gets `--torch-threads C --num-workers C` (C = `--cpus-per-run`),
`--checkpoint-interval K` and `--save-model`, unless `--flags` sets them.

The directory is the state. Run R of sweep NAME works in sweeps/NAME/{env}__{algo}__{seed}/: its
TensorBoard logs and checkpoints go to runs/ there, its output to log.txt. After the run exits 0
and its CSV is written, the sweep puts a file `done` there and never runs it again. A run
without `done` that has a checkpoint continues from its newest one (`--resume`); otherwise it
starts from scratch. So the same command, given again after Ctrl-C, a crash or a time limit,
here or on another machine with the directory, goes on where the sweep stopped.

`--until STEPS` stops each run after the iteration that reaches STEPS env-steps (the scripts'
`--stop-at`), on the schedule of its whole budget: a 3M-step stretch of a 25M-step preset
anneals its learning rate as the 25M-step run does. Such a run is done up to STEPS (`done`
says so); the same command with a larger STEPS, or without `--until`, goes on with it.

Locally, runs share the machine: as many at a time as the cores (`--cpus-per-run` each) and the
available memory (an estimate per run) allow, or `--workers N`. Ctrl-C stops them all: each
saves its checkpoint, and the sweep says how to continue. With `--slurm`, the sweep writes one
job array, sweeps/NAME/sweep.sbatch, with a task per run not yet complete, and submits it; each
task does what a local worker does for its run. Two minutes before the time limit SLURM sends
the task SIGTERM, which it passes to the run, so the run saves its checkpoint; give the same
command again to submit what is left.

The CSV (`export_csv`, read back by `read_results`) has one row per bin of `--bin` env-steps:
`step` (the bin's end), `train` (the mean of charts/episodic_return over the bin; football:
charts/score_rate), `eval` (the last evaluation in the bin, eval/episodic_return or
eval/score_rate; empty if none), `wall_time` (seconds of training up to the bin's end, summed
over the segments of a resumed run, so the time between segments does not count) and `sps`
(the last charts/SPS in the bin). The CSV of a run not yet complete ends at the step of the
checkpoint kept beside it: what a stopped run logged after its last checkpoint is trained again
when it goes on, so it is not part of its curve.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from common.checks import COUNT, OPTIONAL, RANGES, check_value  # noqa: E402
from common.config import NO_PRESET_REASON, PRESETS, fail  # noqa: E402
from common.envs import CORES, ENV_IDS, GRF_ENVS, available_memory_mb, football_memory_mb  # noqa: E402

SCRIPTS = [f"{algo}.py" for algo in PRESETS]
DONE = "done"  # the marker of a complete run
LOG = "log.txt"
CARRIED = "carried.csv"  # the curve of the segments run elsewhere, before the kept checkpoint
EVENTS = "events.out.tfevents.*"  # a TensorBoard event file: one per process that logged to a run directory
# Resident memory of one run, all its processes, with a margin: an on-policy MPE run, and HATD3
# with its replay buffer of 1e6 transitions. Football is estimated from its sizes.
MPE_RUN_MB, HATD3_RUN_MB = 600, 2000
SLURM_MEM_MARGIN = 1.25
SIGNAL_BEFORE_LIMIT_S = 120
PROGRESS_EVERY_S = 60
# The curve's tags: returns on MPE, score rates on football (train, eval)
CURVE_TAGS = {"mpe": ("charts/episodic_return", "eval/episodic_return"),
              "grf": ("charts/score_rate", "eval/score_rate")}
SPS_TAG = "charts/SPS"
CSV_COLUMNS = ("step", "train", "eval", "wall_time", "sps")


@dataclass(frozen=True)
class Run:
    """`python {script} --env {env} --seed {seed} {flags}`, run in `directory`."""

    script: str
    env: str
    seed: int
    flags: tuple[str, ...]  # the sweep's --flags
    directory: str

    @property
    def algo(self) -> str:
        return self.script.removesuffix(".py")

    @property
    def path(self) -> Path:
        return Path(self.directory)

    @property
    def name(self) -> str:
        return self.path.name

    @staticmethod
    def from_dict(d: dict) -> Run:
        return Run(**{**d, "flags": tuple(d["flags"])})


@dataclass(frozen=True)
class Settings:
    """How every run of a sweep runs and exports its curve, wherever it runs."""

    python: str
    cpus: int
    checkpoint_interval: int
    results_dir: str
    bin: int
    until: int = 0  # --until: stop each run at this many env-steps (0: at the end of its budget)


# ---- the runs of a sweep, and the command of each ----

def expand(scripts: list[str], envs: list[str], seeds: list[int], flags: list[str], sweep_dir) -> list[Run]:
    """Every script x env x seed that the script supports; one line for each pair skipped."""
    runs = []
    for script in scripts:
        algo = script.removesuffix(".py")
        for env in envs:
            if env not in PRESETS[algo]:
                print(f"skipping {script} on {env}: {NO_PRESET_REASON.get(algo, 'no preset for it')}")
                continue
            runs += [Run(script, env, seed, tuple(flags), str(Path(sweep_dir) / f"{env}__{algo}__{seed}"))
                     for seed in seeds]
    return runs


def flag_names(flags) -> set[str]:
    return {flag.split("=")[0] for flag in flags if flag.startswith("--")}


def flag_value(flags, name: str, default):
    """The value `flags` give `name` (`--name v` or `--name=v`), else `default`."""
    for k, flag in enumerate(flags):
        if flag == name and k + 1 < len(flags):
            return flags[k + 1]
        if flag.startswith(name + "="):
            return flag.split("=", 1)[1]
    return default


def sweep_flags(run: Run, settings: Settings) -> list[str]:
    """What the sweep adds to a run's flags, unless they set it: the run's share of the cores
    (torch threads and env worker processes; the scripts would otherwise take every core each),
    a checkpoint every so many iterations (what a killed run goes on from) and one at the end."""
    given = flag_names(run.flags)
    added = {"--torch-threads": settings.cpus, "--num-workers": settings.cpus,
             "--checkpoint-interval": settings.checkpoint_interval}
    flags = [arg for name, value in added.items() if name not in given for arg in (name, str(value))]
    return flags + ([] if given & {"--save-model", "--no-save-model"} else ["--save-model"])


def newest_checkpoint(directory) -> Path | None:
    """The checkpoint a run continues from: the newest of all its segments'."""
    checkpoints = list(Path(directory).glob("runs/*/*.cleanrl_model"))
    return max(checkpoints, key=lambda path: path.stat().st_mtime) if checkpoints else None


def kept_checkpoint(run: Run, settings: Settings) -> Path:
    """Where the sweep keeps a copy of the run's newest checkpoint beside its CSV, for the
    repository: results/checkpoints/{env}/{algo}/seed{N}.cleanrl_model. Committed with the CSV,
    it lets the same command go on with the run in a new clone, on another machine."""
    return Path(settings.results_dir) / "checkpoints" / run.env / run.algo / f"seed{run.seed}.cleanrl_model"


def resume_from(run: Run, settings: Settings) -> Path | None:
    """The newest checkpoint of the run's own segments; where it has none (a new clone), the kept
    one, if a run with the same --flags kept it (another sweep's run of this script, env and seed,
    say a shorter one, is not this run)."""
    kept = kept_checkpoint(run, settings)
    try:
        same = json.loads(kept.with_suffix(".json").read_text())["flags"] == list(run.flags)
    except (OSError, ValueError, KeyError):
        same = False
    return newest_checkpoint(run.directory) or (kept if same and kept.exists() else None)


def is_complete(run: Run, settings: Settings) -> bool:
    """Whether the run is done as far as this sweep goes: to the end of its budget, or to
    `--until` steps (`done` holds the `until` it was done to; 0, or a file without it: the end)."""
    try:
        text = (run.path / DONE).read_text()
    except FileNotFoundError:
        return False
    done_until = json.loads(text).get("until", 0) if text.startswith("{") else 0
    return done_until == 0 or 0 < settings.until <= done_until


def command(run: Run, settings: Settings) -> list[str]:
    """The run's command line: from its newest checkpoint if it has one, else from scratch."""
    checkpoint = resume_from(run, settings)
    resume = ["--resume", str(checkpoint.resolve())] if checkpoint else []
    until = ["--stop-at", str(settings.until)] if settings.until else []
    return [settings.python, str(REPO / run.script), "--env", run.env, "--seed", str(run.seed),
            *run.flags, *sweep_flags(run, settings), *until, *resume]


def check_same_flags(runs: list[Run]) -> None:
    """A directory goes on only with the run it was started as: a run with other flags (another
    budget, say) would resume the wrong checkpoint or be skipped as complete."""
    for run in runs:
        record = run.path / "run.json"
        if record.exists() and (old := json.loads(record.read_text())["flags"]) != list(run.flags):
            fail(f"{run.directory} was started with --flags={shlex.join(old)!r}, not "
                 f"{shlex.join(run.flags)!r}; give this sweep another --name")


def memory_mb(run: Run, cpus: int) -> float:
    """Estimated peak memory of a run (football: from its engines, workers and rollout)."""
    if run.env in GRF_ENVS:
        preset = PRESETS[run.algo][run.env]
        sizes = {key: int(float(flag_value(run.flags, "--" + key.replace("_", "-"), preset[key])))
                 for key in ("num_envs", "num_eval_envs", "num_steps")}
        return football_memory_mb(run.env, num_workers=cpus, **sizes)
    return HATD3_RUN_MB if run.algo == "hatd3" else MPE_RUN_MB


def pool_size(runs: list[Run], cpus: int) -> tuple[int, str]:
    """Runs at a time on this machine, as its cores and available memory allow; and why."""
    need, available = max(memory_mb(run, cpus) for run in runs), available_memory_mb()
    size = max(1, min(CORES // cpus, len(runs), available // need))
    return int(size), f"{CORES} cores / {cpus} per run, {available:,.0f} MB available / {need:,.0f} MB per run"


# ---- one run: start it, and what follows its end ----

def lock(run: Run) -> int | None:
    """An exclusive lock on the run's directory (a file descriptor), or None while another
    process holds it: the same run going on in another sweep, or an array submitted twice."""
    fd = os.open(run.path / "lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return fd
    except BlockingIOError:
        os.close(fd)
        return None


def start(run: Run, settings: Settings) -> subprocess.Popen | None:
    """Start or continue a run in its directory, its output appended to its log; None if it is
    running elsewhere. The run's process holds the directory's lock for as long as it lives,
    whatever happens to the sweep. It gets its own session, so that a terminal's Ctrl-C reaches
    the sweep alone, which passes it on once (twice would interrupt the run's checkpoint save)."""
    run.path.mkdir(parents=True, exist_ok=True)
    if (fd := lock(run)) is None:
        print(f"skipped {run.name}: another process is running it (its directory is locked)", flush=True)
        return None
    (run.path / "run.json").write_text(json.dumps(asdict(run), indent=1))
    cmd = command(run, settings)
    if "--resume" in cmd and newest_checkpoint(run.directory) is None:
        # from the kept checkpoint, on a machine without the earlier segments' logs: their curve
        # is the CSV kept beside it, which this machine's segments continue
        print(f"resume {run.name} from {cmd[-1]}", flush=True)
        csv = results_path(settings.results_dir, run.env, run.algo, run.seed)
        if csv.exists() and not (run.path / CARRIED).exists():
            shutil.copyfile(csv, run.path / CARRIED)
    elif "--resume" in cmd:
        print(f"resume {run.name} from {Path(cmd[-1]).relative_to(run.path)}", flush=True)
        try_export(run, settings)  # what the earlier segments logged, in case this one never ends
    else:
        print(f"start {run.name}", flush=True)
    with open(run.path / LOG, "a") as log:
        log.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(cmd, cwd=run.path, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                pass_fds=(fd,), env={**os.environ, "PYTHONUNBUFFERED": "1"})
    os.close(fd)
    return proc


def finish(run: Run, returncode: int, settings: Settings) -> None:
    """After a run's process ends: export its curve, then mark it complete (to `--until` steps,
    if given) if it exited 0, in that order, so that `done` means the CSV is there too."""
    if try_export(run, settings, complete=returncode == 0) and returncode == 0:
        (run.path / DONE).write_text(json.dumps({"at": time.strftime("%Y-%m-%d %H:%M:%S"), "until": settings.until}) + "\n")


def stopped(returncode: int) -> bool:
    """Whether a run ended by Ctrl-C or SIGTERM: 130 from the scripts; killed by the signal itself
    if it came after training, while the run was closing down."""
    return returncode in (130, -signal.SIGINT, -signal.SIGTERM)


def outcome(run: Run, returncode: int, seconds: float) -> str:
    """How a run ended: one line, with the run's last line of output if it stopped; a failure
    adds its last lines of output and names its log."""
    took = f"after {timedelta(seconds=round(seconds))}"
    if returncode == 0:
        return f"done {run.name} {took}"
    if stopped(returncode):
        return f"stopped {run.name} {took}: {last_lines(run.path / LOG, 1)}"
    return f"FAILED {run.name} (exit {returncode}) {took}; {run.path / LOG} ends:\n{last_lines(run.path / LOG, 6)}"


def last_lines(path: Path, n: int) -> str:
    lines = [line.rstrip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return "\n".join(lines[-n:]) if n > 1 else lines[-1].strip()


# ---- the learning curve: TensorBoard logs of all segments -> CSV ----

def curve_tags(env_id: str) -> tuple[str, str]:
    return CURVE_TAGS["grf" if env_id in GRF_ENVS else "mpe"]


def results_path(results_dir, env_id: str, algo: str, seed: int) -> Path:
    return Path(results_dir) / env_id / algo / f"seed{seed}.csv"


def read_segment(event_file, tags) -> tuple[float, dict[str, np.ndarray]] | None:
    """One TensorBoard event file, the log of one process (a resumed run goes on in its run
    directory with a new file): when its writer started, and per tag the rows (step, wall time,
    value)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(event_file), size_guidance={"scalars": 0})
    acc.Reload()
    try:
        started = acc.FirstEventTimestamp()
    except ValueError:  # no event file yet
        return None
    present = acc.Tags()["scalars"]
    return started, {tag: np.array([(e.step, e.wall_time, e.value) for e in acc.Scalars(tag)] if tag in present
                                   else []).reshape(-1, 3) for tag in tags}


def merge_segments(segments, tags) -> dict[str, np.ndarray]:
    """The segments of a run (start time, rows per tag) as one log, wall times in seconds of
    training: within a segment from its start, plus the durations of the segments before it, so
    the time between segments does not count. A resumed segment repeats the steps after its
    checkpoint, so from its first logged step on it replaces what earlier segments logged."""
    merged, offset = {tag: np.empty((0, 3)) for tag in tags}, 0.0
    for started, rows in sorted(segments, key=lambda segment: segment[0]):
        logged = [r for r in rows.values() if len(r)]
        if not logged:  # stopped before its first iteration
            continue
        first = min(r[:, 0].min() for r in logged)
        for tag in tags:
            kept = merged[tag][merged[tag][:, 0] < first]
            merged[tag] = np.concatenate([kept, rows[tag] + [0, offset - started, 0]])
        offset += max(r[:, 1].max() for r in logged) - started
    return merged


def bin_rows(merged: dict[str, np.ndarray], train_tag: str, eval_tag: str, bin_size: int) -> list[tuple]:
    """One row per bin (lo, hi] of env-steps with anything logged: hi, the mean training value,
    the last evaluation, the training time at the bin's last event, the last SPS (NaN: none)."""
    everything = np.concatenate(list(merged.values()))
    rows = []
    for b in np.unique((everything[:, 0] - 1) // bin_size).astype(int):
        lo, hi = b * bin_size, (b + 1) * bin_size
        train, evals, sps, any_tag = (r[(r[:, 0] > lo) & (r[:, 0] <= hi)]
                                      for r in (merged[train_tag], merged[eval_tag], merged[SPS_TAG], everything))
        rows.append((hi, train[:, 2].mean() if len(train) else math.nan, evals[-1, 2] if len(evals) else math.nan,
                     any_tag[:, 1].max(), sps[-1, 2] if len(sps) else math.nan))
    return rows


def write_csv(path: Path, rows: list[tuple]) -> None:
    """Written to a temporary file and renamed: a reader never sees half a CSV."""
    def number(x, fmt):
        return "" if math.isnan(x) else format(x, fmt)

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w") as f:
        f.write(",".join(CSV_COLUMNS) + "\n")
        for step, train, evaluation, wall, sps in rows:
            f.write(f"{step},{number(train, '.4f')},{number(evaluation, '.4f')},{wall:.1f},{number(sps, '.0f')}\n")
    os.replace(tmp, path)


def carry_on(carried: dict[str, np.ndarray], merged: dict[str, np.ndarray], tags, bin_size: int):
    """Join the curve of a CSV written elsewhere (`carried`: the segments before the kept
    checkpoint) to this machine's merged log. Returns the carried rows of the bins before the one
    this machine resumed in; the log with the carried part of that bin added as events at the
    resume step, so that the bin's training mean weighs the two parts by their env-steps and its
    evaluation is the carried one unless this machine evaluated there too; and the carried
    training time, which this machine's times count on from."""
    train_tag, eval_tag, sps_tag = tags
    iterations = merged[sps_tag][:, 0]  # SPS is logged once per iteration
    everything = np.concatenate([rows[:, 0] for rows in merged.values()])
    resume = iterations[0] - np.diff(iterations).min() if len(iterations) > 1 else everything.min() - 1
    lo = resume // bin_size * bin_size  # the resume step lies in the bin (lo, lo + bin_size], or at lo
    keep = np.flatnonzero(carried["step"] <= lo)
    before = [(int(carried["step"][i]), *(carried[c][i] for c in CSV_COLUMNS[1:])) for i in keep]
    offset = before[-1][3] if before else 0.0
    straddle = np.flatnonzero(carried["step"] == lo + bin_size)
    if resume > lo and len(straddle):
        i = straddle[0]
        offset = carried["wall_time"][i]
        # the carried mean stands for as many episodes as this machine logged per env-step in the bin
        train = merged[train_tag][(merged[train_tag][:, 0] > resume) & (merged[train_tag][:, 0] <= lo + bin_size)]
        span = everything[everything <= lo + bin_size].max() - resume
        episodes = max(1, round(len(train) * (resume - lo) / span)) if len(train) else 1
        part = {train_tag: [carried["train"][i]] * episodes, eval_tag: [carried["eval"][i]],
                sps_tag: [carried["sps"][i]]}
        merged = {tag: np.concatenate([np.array([(resume, 0.0, v) for v in part[tag] if not math.isnan(v)])
                                       .reshape(-1, 3), merged[tag]]) for tag in tags}
    return before, merged, offset


def export_csv(event_files, env_id: str, csv_path, bin_size: int = 100_000, carried=None,
               until: int | None = None) -> int | None:
    """Write the learning curve of one run, its TensorBoard event files (the segments of a
    resumed run) merged, to `csv_path`, after the rows of the CSV `carried` (the segments run on
    another machine) if given, and up to step `until` if given. Returns the number of rows, or
    None (and writes nothing) if nothing is logged."""
    train_tag, eval_tag = curve_tags(env_id)
    tags = (train_tag, eval_tag, SPS_TAG)
    segments = [s for s in (read_segment(f, tags) for f in event_files) if s is not None]
    merged = merge_segments(segments, tags)
    if not any(len(rows) for rows in merged.values()):
        return None
    before, offset = [], 0.0
    if carried is not None and Path(carried).exists():
        before, merged, offset = carry_on(read_results(carried), merged, tags, bin_size)
    if until is not None:
        merged = {tag: rows[rows[:, 0] <= until] for tag, rows in merged.items()}
    rows = before + [(step, train, evaluation, wall + offset, sps)
                     for step, train, evaluation, wall, sps in bin_rows(merged, train_tag, eval_tag, bin_size)]
    write_csv(Path(csv_path), rows)
    return len(rows)


def read_results(path) -> dict[str, np.ndarray]:
    """A results CSV as columns `step train eval wall_time sps`; NaN where a bin has no value."""
    data = np.genfromtxt(path, delimiter=",", names=True, ndmin=1)
    return {column: data[column] for column in CSV_COLUMNS}


def checkpoint_step(path: Path) -> int | None:
    """The env-steps a checkpoint was trained for; None for a file that torch cannot read."""
    import torch

    try:
        return int(torch.load(path, map_location="cpu", weights_only=True)["global_step"])
    except Exception:  # noqa: BLE001 - a damaged file: the curve is then not cut
        return None


def export(run: Run, settings: Settings, complete: bool = False) -> int | None:
    """The run's CSV, and a copy of its newest checkpoint kept beside it (kept_checkpoint); the
    CSV of a run not `complete` up to that checkpoint's step, from which it goes on."""
    checkpoint = newest_checkpoint(run.directory)
    until = None if complete or checkpoint is None else checkpoint_step(checkpoint)
    rows = export_csv(Path(run.directory).glob(f"runs/*/{EVENTS}"), run.env,
                      results_path(settings.results_dir, run.env, run.algo, run.seed), settings.bin,
                      run.path / CARRIED, until)
    if checkpoint is not None:
        kept = kept_checkpoint(run, settings)
        kept.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(checkpoint, kept.with_suffix(".tmp"))
        os.replace(kept.with_suffix(".tmp"), kept)  # a reader never sees half a checkpoint
        kept.with_suffix(".json").write_text(json.dumps({"flags": list(run.flags)}) + "\n")
    return rows


def try_export(run: Run, settings: Settings, complete: bool = False) -> bool:
    """export(), where a write that fails (a full disk) is one warning line, not the sweep's end:
    the runs go on, and the same command, or --export-only, writes the results later."""
    try:
        export(run, settings, complete)
        return True
    except OSError as err:
        print(f"warning: could not write the results of {run.name} ({err}); the sweep goes on, and the same "
              f"command or --export-only writes them later", flush=True)
        return False


# ---- locally: a pool of runs ----

PROGRESS_LEFT = re.compile(r"left (?:(\d+) days?, )?(\d+):(\d\d):(\d\d)")


def reported_left(run: Run) -> float | None:
    """The seconds left that the run's last progress line reports (`... left 0:09:08`), if any."""
    try:
        with open(run.path / LOG, "rb") as f:
            f.seek(max(f.seek(0, os.SEEK_END) - 4096, 0))
            tail = f.read().decode(errors="replace")
    except OSError:
        return None
    if not (found := PROGRESS_LEFT.findall(tail)):
        return None
    days, h, m, s = found[-1]
    return ((int(days or 0) * 24 + int(h)) * 60 + int(m)) * 60 + int(s)


class Pool:
    """The runs of a sweep on this machine, at most `size` at a time, each its own process."""

    def __init__(self, runs: list[Run], settings: Settings, size: int):
        self.pending, self.settings, self.size = list(runs), settings, size
        self.running: dict[Run, tuple[subprocess.Popen, float]] = {}
        self.durations: list[tuple[Run, float]] = []  # of the runs that completed
        self.failed: list[Run] = []
        self.started = time.time()

    def fill(self) -> None:
        while self.pending and len(self.running) < self.size:
            run = self.pending.pop(0)
            if (proc := start(run, self.settings)) is not None:
                self.running[run] = (proc, time.time())

    def reap(self) -> bool:
        """Finish the runs that ended; whether any did."""
        ended = [(run, proc, t) for run, (proc, t) in self.running.items() if proc.poll() is not None]
        for run, proc, t in ended:
            del self.running[run]
            finish(run, proc.returncode, self.settings)
            if proc.returncode == 0:
                self.durations.append((run, time.time() - t))
            elif not stopped(proc.returncode):
                self.failed.append(run)
            print(outcome(run, proc.returncode, time.time() - t), flush=True)
        return bool(ended)

    def forward(self, signum: int) -> None:
        """Ctrl-C: each run saves its checkpoint and exits."""
        for proc, _ in self.running.values():
            proc.send_signal(signum)

    def time_left(self) -> float | None:
        """The work left, spread over the pool. A running run: what its last progress line says
        is left. A pending one: the mean length of its script's runs, completed or projected
        (elapsed + left), else of all runs: scripts differ in cost several times, and a resumed run
        needs only what its checkpoint lacks."""
        now, lengths, work = time.time(), {}, 0.0
        for run, seconds in self.durations:
            lengths.setdefault(run.algo, []).append(seconds)
        unknown = 0
        for run, (_, started) in self.running.items():
            if (left := reported_left(run)) is None:
                unknown += 1
            else:
                work += left
                lengths.setdefault(run.algo, []).append(now - started + left)
        every = [s for seconds in lengths.values() for s in seconds]
        if not every:
            return None
        work += unknown * float(np.mean(every))
        work += sum(float(np.mean(lengths.get(run.algo, every))) for run in self.pending)
        return work / self.size

    def progress(self) -> str:
        left = self.time_left()
        return (f"[sweep] {len(self.durations)} done, {len(self.running)} running, {len(self.pending)} left, "
                f"{len(self.failed)} failed; elapsed {timedelta(seconds=round(time.time() - self.started))}, "
                f"time left {'unknown' if left is None else timedelta(seconds=round(left))}")


def run_local(runs: list[Run], settings: Settings, size: int) -> int:
    """Run the pool to its end: a progress line on each run's end and every minute. Ctrl-C (or
    SIGTERM) is passed on to the running runs, which save their checkpoints; exit 130."""
    pool, stop, stopping = Pool(runs, settings, size), [], False
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda signum, frame: stop.append(signum))
    reported = time.time()
    while pool.running or (pool.pending and not stop):  # once stopped, pending runs wait for the next command
        if not stop:
            pool.fill()
        elif not stopping:  # the first signal is passed on, once; later ones are not
            print(f"\n{signal.Signals(stop[0]).name}: stopping {len(pool.running)} runs (they save checkpoints)",
                  flush=True)
            pool.forward(stop[0])
            stopping = True
        time.sleep(0.5)
        if pool.reap() or time.time() - reported >= PROGRESS_EVERY_S:
            print(pool.progress(), flush=True)
            reported = time.time()
    if stop:
        print(f"stopped; to go on, give the same command again:\n  {shlex.join([sys.executable, *sys.argv])}")
        return 130
    return 1 if pool.failed else 0


# ---- on SLURM: one job array, one task per run ----

def array_ranges(indices: list[int]) -> str:
    """SLURM's --array list, consecutive indices as ranges: [0, 1, 2, 5, 7, 8] -> "0-2,5,7-8"."""
    ranges = []
    for k in indices:
        if ranges and ranges[-1][1] == k - 1:
            ranges[-1][1] = k
        else:
            ranges.append([k, k])
    return ",".join(f"{a}-{b}" if b > a else f"{a}" for a, b in ranges)


def sbatch_script(runs: list[Run], indices: list[int], manifest: Path, settings: Settings, opts) -> str:
    """The job array: task i runs run i of the manifest. `exec` makes the task's Python process
    the batch shell itself, so that `--signal=B:TERM` (the time limit's warning, to the batch
    shell alone) reaches it, and it alone passes it on to the run."""
    throttle = f"%{opts.workers}" if opts.workers else ""
    need = max(memory_mb(run, settings.cpus) for run in runs)
    mem = opts.mem or f"{math.ceil(need * SLURM_MEM_MARGIN / 100) * 100}M"
    sweep_dir = manifest.parent
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name=sweep-{sweep_dir.name}",
        f"#SBATCH --array={array_ranges(indices)}{throttle}",
        f"#SBATCH --cpus-per-task={settings.cpus}",
        f"#SBATCH --mem={mem}",
        f"#SBATCH --time={opts.time}",
        *([f"#SBATCH --partition={opts.partition}"] if opts.partition else []),
        f"#SBATCH --output={sweep_dir}/slurm-%A_%a.out",
        f"#SBATCH --chdir={REPO}",
        f"#SBATCH --signal=B:TERM@{SIGNAL_BEFORE_LIMIT_S}",
        f"exec {shlex.quote(settings.python)} {shlex.quote(str(REPO / 'benchmarks' / 'sweep.py'))} "
        f"--run-manifest {shlex.quote(str(manifest))} --index \"$SLURM_ARRAY_TASK_ID\"",
    ]
    return "\n".join(lines) + "\n"


def write_slurm(runs: list[Run], settings: Settings, sweep_dir: Path, opts) -> Path:
    """The manifest (settings and every run of the sweep, complete or not: the array's indices
    point into it) and the job array over the runs not yet complete."""
    sweep_dir.mkdir(parents=True, exist_ok=True)
    manifest = sweep_dir / "manifest.json"
    manifest.write_text(json.dumps({"settings": asdict(settings), "runs": [asdict(run) for run in runs]}, indent=1))
    todo = [k for k, run in enumerate(runs) if not is_complete(run, settings)]
    script = sweep_dir / "sweep.sbatch"
    script.write_text(sbatch_script([runs[k] for k in todo], todo, manifest.resolve(), settings, opts))
    return script


def submit(script: Path) -> int:
    result = subprocess.run(["sbatch", "--parsable", str(script)], capture_output=True, text=True)
    if result.returncode:
        print(f"error: sbatch {script}: {result.stderr.strip()}", file=sys.stderr)
        return 1
    job = result.stdout.strip().split(";")[0]
    print(f"submitted job array {job} ({script}); watch it with `squeue -j {job}`, "
          f"the runs' output in {script.parent}/*/{LOG}")
    return 0


def run_task(manifest: str, index: int) -> int:
    """One task of the job array: what a local worker does for one run (continue it from its
    checkpoint if it has one, run it, export its curve, mark it done). SIGTERM (the time limit's
    warning, or `scancel --batch --signal=TERM`) or SIGINT is passed on to the run once, which
    saves its checkpoint; the task then exits non-zero, so that a resubmission continues it."""
    spec = json.loads(Path(manifest).read_text())
    settings, run = Settings(**spec["settings"]), Run.from_dict(spec["runs"][index])
    if is_complete(run, settings):
        print(f"{run.name} is complete")
        return 0
    began, proc, passed_on = time.time(), start(run, settings), []
    if proc is None:
        return 0

    def pass_on(signum, frame):
        if not passed_on:
            passed_on.append(signum)
            proc.send_signal(signum)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, pass_on)
    returncode = proc.wait()
    finish(run, returncode, settings)
    print(outcome(run, returncode, time.time() - began), flush=True)
    return returncode if returncode >= 0 else 128 - returncode  # killed by signal N: 128 + N, as a shell says


# ---- the command line ----

class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, as the scripts' bad input
        fail(message)


def parse(argv=None):
    p = Parser(description=__doc__.splitlines()[0])
    p.add_argument("--scripts", nargs="+", metavar="SCRIPT", help=f"of: {' '.join(SCRIPTS)}")
    p.add_argument("--envs", nargs="+", metavar="ENV", help=f"of: {' '.join(ENV_IDS)}")
    p.add_argument("--seeds", nargs="+", type=int)
    p.add_argument("--flags", default="", help='flags for every run, e.g. --flags="--total-timesteps 2000000"')
    p.add_argument("--name", default="default", help="the sweep's directory, sweeps/NAME")
    p.add_argument("--cpus-per-run", "--cpus-per-task", dest="cpus", type=int, default=1,
                   help="cores per run (its torch threads and env workers; SLURM's --cpus-per-task)")
    p.add_argument("--workers", type=int, help="runs at a time (default: as cores and memory allow; "
                   "with --slurm: no limit, else the array's %%N)")
    p.add_argument("--checkpoint-interval", type=int, default=25, help="iterations between checkpoints")
    p.add_argument("--bin", type=int, default=100_000, help="env-steps per CSV row")
    p.add_argument("--until", type=int, default=0, metavar="STEPS",
                   help="stop each run at STEPS env-steps, on its whole budget's schedule (0: at its end)")
    p.add_argument("--results-dir", default=str(REPO / "results"), help="where the CSVs go")
    p.add_argument("--sweeps-dir", default=str(REPO / "sweeps"), help="where sweep directories go")
    p.add_argument("--dry-run", action="store_true", help="print what would run (--slurm: write the script only)")
    p.add_argument("--export-only", action="store_true", help="only export the CSVs of the existing run directories")
    p.add_argument("--slurm", action="store_true", help="submit a SLURM job array instead of running here")
    p.add_argument("--time", default="1-00:00:00", help="SLURM time limit per run (runs go on when resubmitted)")
    p.add_argument("--mem", help="SLURM memory per run, e.g. 8G (default: the estimate of the largest run + 25%%)")
    p.add_argument("--partition", help="SLURM partition (default: the cluster's)")
    p.add_argument("--run-manifest", help=argparse.SUPPRESS)  # a job array task: the run of --index in it
    p.add_argument("--index", type=int, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def check(opts) -> None:
    """Bad input stops here, with one line, before anything starts."""
    if not (opts.scripts and opts.envs and opts.seeds):
        fail("--scripts, --envs and --seeds are required")
    for script in opts.scripts:
        if script not in SCRIPTS:
            fail(f"unknown script {script!r}; valid scripts: {', '.join(SCRIPTS)}")
    for env in opts.envs:
        if env not in ENV_IDS:
            fail(f"unknown env {env!r}; valid envs: {', '.join(ENV_IDS)}")
    if owned := flag_names(opts.flags) & {"--env", "--seed", "--resume", "--stop-at"}:
        fail(f"--flags may not set {', '.join(sorted(owned))}: the sweep sets them for each run "
             "(--stop-at: give --until)")
    for name, value, rule in [("--cpus-per-run", opts.cpus, COUNT), ("--bin", opts.bin, COUNT),
                              ("--checkpoint-interval", opts.checkpoint_interval, OPTIONAL),
                              ("--until", opts.until, OPTIONAL),
                              *[("--workers", opts.workers, COUNT)] * (opts.workers is not None),
                              *[("--seeds", seed, RANGES["seed"]) for seed in opts.seeds]]:
        check_value(name, value, rule)
    if opts.slurm and not opts.dry_run and shutil.which("sbatch") is None:
        fail("sbatch not found: --slurm needs a SLURM submit host (--dry-run only writes the job script)")


def main(argv=None) -> int:
    opts = parse(argv)
    if opts.run_manifest:
        return run_task(opts.run_manifest, opts.index)
    opts.scripts = [Path(s).name for s in opts.scripts or []]
    try:
        opts.flags = shlex.split(opts.flags)
    except ValueError as err:  # an unclosed quote
        fail(f"--flags: {err}")
    check(opts)
    settings = Settings(sys.executable, opts.cpus, opts.checkpoint_interval, str(Path(opts.results_dir).resolve()),
                        opts.bin, opts.until)
    sweep_dir = Path(opts.sweeps_dir).resolve() / opts.name
    runs = expand(opts.scripts, opts.envs, opts.seeds, opts.flags, sweep_dir)
    check_same_flags(runs)
    if opts.export_only:
        for run in runs:
            rows = export(run, settings, is_complete(run, settings))
            print(f"{run.name}: {'nothing logged' if rows is None else f'{rows} rows'}")
        return 0

    todo = [run for run in runs if not is_complete(run, settings)]
    resumed = sum(resume_from(run, settings) is not None for run in todo)
    print(f"{len(runs)} run{'s' * (len(runs) != 1)} in {sweep_dir}: {len(runs) - len(todo)} complete, "
          f"{len(todo)} to run ({resumed} from a checkpoint)")
    if not todo:
        return 0
    if opts.slurm:
        script = write_slurm(runs, settings, sweep_dir, opts)
        print(f"wrote {script}")
        return 0 if opts.dry_run else submit(script)
    size, why = (opts.workers, "--workers") if opts.workers else pool_size(todo, opts.cpus)
    print(f"{min(size, len(todo))} at a time ({why})", flush=True)
    if opts.dry_run:
        for run in todo:
            print(f"{run.name}: {shlex.join(command(run, settings))}")
        return 0
    return run_local(todo, settings, size)


if __name__ == "__main__":
    sys.exit(main())
