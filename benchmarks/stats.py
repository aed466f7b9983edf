"""How sure the results are, with 3-5 seeds a cell: bootstrap confidence intervals of the mean and
the interquartile mean (IQM), and the probability of improvement, as recommended by Agarwal et
al., "Deep Reinforcement Learning at the Edge of the Statistical Precipice" (NeurIPS 2021).

Their stratified bootstrap resamples the runs of each task separately; every number here is of
one task, so it is the plain bootstrap over that task's seeds, and where two groups are compared
(two algorithms, or two implementations) each group's seeds are resampled on their own. The
intervals are percentile intervals (`scipy.stats.bootstrap`), from a fixed generator seed so that
the tables are the same on every run. With so few seeds a percentile interval cannot reach
beyond the seeds' range (with 3 seeds it spans most of it) and is narrower than a t interval:
it says where our seeds lie, not where a hundred more would.
"""

from __future__ import annotations

import numpy as np
from scipy import stats as scipy_stats

CONFIDENCE = 0.95
RESAMPLES = 50_000
SEED = 0
LEGEND = (f"[a, b]: {CONFIDENCE:.0%} percentile bootstrap interval over seeds ({RESAMPLES:,} resamples, "
          f"generator seed {SEED}; none for one seed)")
IQM_LEGEND = ("IQM: interquartile mean, the mean after cutting 25% of the seeds from each end (none of 3, so "
              "there it is the mean; one of 4 or 5)")


def iqm(values, axis=-1):
    """Interquartile mean: the mean after cutting 25% of the values from each end."""
    return scipy_stats.trim_mean(values, 0.25, axis=axis)


def mean(values, axis=-1):
    return np.mean(values, axis=axis)


def mean_difference(a, b, axis=-1):
    return np.mean(a, axis=axis) - np.mean(b, axis=axis)


def improvement(a, b, axis=-1):
    """P(X > Y) for X drawn from a's values and Y from b's, ties counting a half: the fraction of
    pairs (a_i, b_j) with a_i > b_j (the Mann-Whitney U statistic over n_a n_b)."""
    a, b = np.moveaxis(np.asarray(a), axis, -1), np.moveaxis(np.asarray(b), axis, -1)
    x, y = a[..., :, None], b[..., None, :]
    return ((x > y) + 0.5 * (x == y)).mean(axis=(-2, -1))


def interval(statistic, *groups, seed: int = SEED) -> tuple[float, float, float]:
    """(statistic of the groups, lower, upper end of its bootstrap interval); the interval is NaN
    where a group has fewer than 2 values (one seed has no spread to resample)."""
    groups = [np.sort(np.asarray(g, dtype=float)) for g in groups]  # the same interval whatever the seeds' order
    point = float(statistic(*groups))
    if min(len(g) for g in groups) < 2:
        return point, np.nan, np.nan
    result = scipy_stats.bootstrap(groups, statistic, n_resamples=RESAMPLES, confidence_level=CONFIDENCE,
                                   method="percentile", vectorized=True, paired=False,
                                   rng=np.random.default_rng(seed))
    return point, float(result.confidence_interval.low), float(result.confidence_interval.high)
