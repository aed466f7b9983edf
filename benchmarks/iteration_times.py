"""Seconds and env-steps/s of each iteration of a training run, from its progress lines.

    python benchmarks/iteration_times.py sweeps/grf_hard/grf_ca_hard__happo__1/log.txt
    python benchmarks/iteration_times.py LOG --from 15

A script's progress line gives the time elapsed since the process started (or resumed); the
difference between two lines of one process is an iteration's wall time. The first iteration
after a start also holds the engines' start-up; an evaluation iteration holds the evaluation.
Both are marked, so that a long run's speed can be compared across its resumptions on one
machine (docs/football.md, "Heap pages").
"""

import argparse
import re
import sys

LINE = re.compile(r"^iter (\d+)/\d+ step (\d+) .* elapsed (?:(\d+) days?, )?(\d+):(\d\d):(\d\d)")
EVAL_INTERVAL = re.compile(r"^\|eval_interval\|(\d+)\|")  # the hyperparameter table


def iterations(lines):
    """(iteration, step, seconds, notes) per progress line; notes: whether it is the first after a
    (re)start, whether it evaluated (from the log's eval_interval)."""
    previous = None  # elapsed seconds at the last line of this process
    eval_interval = 0
    for line in lines:
        if m := EVAL_INTERVAL.match(line):
            eval_interval = int(m[1])
        if line.startswith(("starting ", "resumed from")):  # a process starts its engines, or resumes
            previous = None
            continue
        m = LINE.match(line)
        if not m:
            continue
        it, step = int(m[1]), int(m[2])
        elapsed = int(m[3] or 0) * 86400 + int(m[4]) * 3600 + int(m[5]) * 60 + int(m[6])
        notes = ["first after a (re)start: engines' start-up included"] if previous is None else []
        if eval_interval and it % eval_interval == 0:
            notes.append("with an evaluation")
        yield it, step, elapsed - (previous or 0), "; ".join(notes)
        previous = elapsed


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("log", help="a run's log (the script's standard output, e.g. a sweep's log.txt)")
    p.add_argument("--from", dest="first", type=int, default=1, help="first iteration to print")
    p.add_argument("--steps-per-iteration", type=int, default=None,
                   help="env-steps per iteration (default: from the step column)")
    opts = p.parse_args(argv)
    try:
        with open(opts.log) as f:
            rows = list(iterations(f))
    except OSError as err:
        sys.exit(f"log {opts.log}: {err.strerror}")
    if not rows:
        sys.exit(f"log {opts.log}: no progress lines ('iter N/M step ... elapsed H:MM:SS')")
    per = opts.steps_per_iteration or rows[0][1] // rows[0][0]
    print("| iteration | step | seconds | env-steps/s | note |")
    print("|---:|---:|---:|---:|---|")
    for it, step, seconds, note in rows:
        if it >= opts.first:
            print(f"| {it} | {step:,} | {seconds:,} | {per / max(seconds, 1):.0f} | {note} |")


if __name__ == "__main__":
    main()
