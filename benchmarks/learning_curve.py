"""Print a run's learning curve from its TensorBoard log: training tags averaged over bins of
steps, evaluation tags at each evaluation.

    python benchmarks/learning_curve.py runs/grf_ps__happo__1__1763750000
    python benchmarks/learning_curve.py runs/mpe_spread__happo__1__* --bin 1000000 \\
        --train charts/episodic_return --eval eval/episodic_return
"""

import argparse

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--bin", type=int, default=100_000, help="env-steps per bin of the training tag")
    parser.add_argument("--train", default="charts/score_rate", help="training tag, averaged per bin")
    parser.add_argument("--eval", default="eval/score_rate", help="evaluation tag, one row per evaluation")
    opts = parser.parse_args()

    acc = EventAccumulator(opts.run_dir, size_guidance={"scalars": 0})
    acc.Reload()
    tags = acc.Tags()["scalars"]
    for tag in (opts.train, opts.eval):
        if tag not in tags:
            parser.error(f"{opts.run_dir} has no tag {tag}; it has: {', '.join(sorted(tags))}")
    train = np.array([(e.step, e.value) for e in acc.Scalars(opts.train)])
    evals = {e.step: e.value for e in acc.Scalars(opts.eval)}

    # a training tag holds, per env-step in which episodes ended, the mean over those episodes
    bins = (train[:, 0] - 1) // opts.bin
    print(f"| steps | {opts.train} (mean over the bin) | {opts.eval} (evaluations in the bin) |")
    print("|---:|---:|---|")
    for b in np.unique(bins).astype(int):
        lo, hi = b * opts.bin, (b + 1) * opts.bin
        in_bin = [f"{v:.3f} @ {s:,}" for s, v in evals.items() if lo < s <= hi]
        print(f"| {hi:,} | {train[bins == b, 1].mean():.3f} | {', '.join(in_bin)} |")
