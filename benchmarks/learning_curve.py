"""Print a run's learning curve from its TensorBoard log: training tags averaged over bins of
steps, evaluation tags at each evaluation; or the figures at given steps; or a small CSV.

    python benchmarks/learning_curve.py runs/grf_ps__happo__1__1763750000
    python benchmarks/learning_curve.py runs/mpe_spread__happo_rga__1__* --mpe --at 1e6,2e6,5e6,1e7
    python benchmarks/learning_curve.py runs/mpe_spread__happo_rga__1__* --mpe --csv results/x.csv

At a step S (`--at`): "train" is the mean of the training tag over (S - 100k, S], "eval" the
mean of the last two evaluations at or before S (the tables in docs/). The CSV is
`benchmarks/sweep.py`'s (step, train, eval, wall_time, sps per bin), with the env's tags.
"""

import argparse
from pathlib import Path

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def curves(run_dir: str, train_tag: str, eval_tag: str):
    acc = EventAccumulator(run_dir, size_guidance={"scalars": 0})
    acc.Reload()
    tags = acc.Tags()["scalars"]
    if train_tag not in tags:
        raise SystemExit(f"{run_dir} has no tag {train_tag}; it has: {', '.join(sorted(tags))}")
    train = np.array([(e.step, e.value) for e in acc.Scalars(train_tag)])
    # a run stopped before its first evaluation has none
    evals = np.array([(e.step, e.value) for e in acc.Scalars(eval_tag)] if eval_tag in tags else []).reshape(-1, 2)
    return train, evals


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--bin", type=int, default=100_000, help="env-steps per bin of the training tag")
    parser.add_argument("--train", default="charts/score_rate", help="training tag, averaged per bin")
    parser.add_argument("--eval", default="eval/score_rate", help="evaluation tag, one row per evaluation")
    parser.add_argument("--mpe", action="store_true", help="returns instead of score rates "
                        "(--train charts/episodic_return --eval eval/episodic_return)")
    parser.add_argument("--at", help="comma-separated steps: train / eval at each (e.g. 1e6,2e6)")
    parser.add_argument("--csv", help="write the binned curve to this file")
    opts = parser.parse_args()
    if opts.mpe:
        opts.train, opts.eval = "charts/episodic_return", "eval/episodic_return"
    train, evals = curves(opts.run_dir, opts.train, opts.eval)

    if opts.at:
        print("| step | train | eval |\n|---:|---:|---:|")
        for step in (int(float(s)) for s in opts.at.split(",")):
            window = train[(train[:, 0] > step - 100_000) & (train[:, 0] <= step), 1]
            last = evals[evals[:, 0] <= step, 1][-2:]
            if train[-1, 0] < step:
                print(f"| {step:,} | (the run ends at {int(train[-1, 0]):,}) | |")
                continue
            print(f"| {step:,} | {window.mean():.1f} | {last.mean() if len(last) else float('nan'):.1f} |")
        raise SystemExit

    # a training tag holds, per env-step in which episodes ended, the mean over those episodes
    bins = (train[:, 0] - 1) // opts.bin
    rows = []
    for b in np.unique(bins).astype(int):
        lo, hi = b * opts.bin, (b + 1) * opts.bin
        in_bin = evals[(evals[:, 0] > lo) & (evals[:, 0] <= hi)]
        rows.append((hi, train[bins == b, 1].mean(), in_bin))
    if opts.csv:  # the results/ format, as the sweep writes it (the env id opens the run's name)
        from sweep import EVENTS, export_csv

        export_csv(Path(opts.run_dir).glob(EVENTS), Path(opts.run_dir).name.split("__")[0], opts.csv, opts.bin)
        raise SystemExit
    print(f"| steps | {opts.train} (mean over the bin) | {opts.eval} (evaluations in the bin) |")
    print("|---:|---:|---|")
    for hi, mean, in_bin in rows:
        print(f"| {hi:,} | {mean:.3f} | {', '.join(f'{v:.3f} @ {int(s):,}' for s, v in in_bin)} |")
