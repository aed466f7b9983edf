"""benchmarks/stats.py on synthetic seeds whose answers are known: the bootstrap intervals of the
mean, the IQM and a difference of means, and the probability of improvement."""

import sys

import numpy as np
import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import stats  # noqa: E402


def test_identical_seeds_give_a_zero_width_interval():
    for statistic in (stats.mean, stats.iqm):
        assert stats.interval(statistic, [-33.2] * 3) == pytest.approx((-33.2,) * 3)
    # two groups, each with no spread: the difference is exact
    assert stats.interval(stats.mean_difference, [-30.0] * 3, [-35.0] * 5) == pytest.approx((5.0,) * 3)


def test_two_seeds_interval_spans_them():
    """Of two seeds, a resample is both of one (probability 1/4 each) or one of each: the 2.5%
    and 97.5% percentiles are the seeds themselves."""
    assert stats.interval(stats.mean, [-30.0, -34.0]) == pytest.approx((-32.0, -34.0, -30.0))


def test_one_seed_has_no_interval():
    point, lo, hi = stats.interval(stats.mean, [-45.0])
    assert point == -45.0 and np.isnan(lo) and np.isnan(hi)
    point, lo, hi = stats.interval(stats.improvement, [1.0, 2.0], [0.0])
    assert point == 1.0 and np.isnan(lo) and np.isnan(hi)


def test_iqm_cuts_a_quarter_from_each_end():
    assert stats.iqm([0.0, 1.0, 2.0, 3.0, 100.0]) == pytest.approx(2.0)  # the middle three of five
    assert stats.iqm([1.0, 2.0, 9.0]) == pytest.approx(4.0)  # none of three: the mean
    assert stats.iqm([0.0, 1.0, 3.0, 100.0]) == pytest.approx(2.0)  # the middle two of four


def test_probability_of_improvement():
    assert stats.interval(stats.improvement, [5.0, 6.0, 7.0], [1.0, 2.0, 3.0]) == (1.0, 1.0, 1.0)  # disjoint
    assert stats.interval(stats.improvement, [1.0, 2.0, 3.0], [5.0, 6.0, 7.0]) == (0.0, 0.0, 0.0)
    assert stats.improvement([1.0, 3.0], [2.0, 4.0]) == 0.25  # of the 4 pairs only (3, 2) is above
    assert stats.improvement([1.0, 2.0], [1.0, 2.0]) == 0.5  # ties count a half
    point, lo, hi = stats.interval(stats.improvement, [1.0, 3.0, 5.0], [2.0, 4.0, 6.0])
    assert point == pytest.approx(1 / 3) and 0.0 <= lo < point < hi <= 1.0


def test_interval_width_and_reproducibility_on_a_large_sample():
    """100 draws of N(0, 1): the 95% interval of the mean is about +- 1.96 s / sqrt(100) around
    the sample mean, and the same on every call (a fixed generator seed)."""
    x = np.random.default_rng(7).normal(size=100)
    point, lo, hi = stats.interval(stats.mean, x)
    assert point == pytest.approx(x.mean())
    assert (hi - lo) / 2 == pytest.approx(1.96 * x.std(ddof=1) / np.sqrt(100), rel=0.1)
    assert lo < point < hi
    assert stats.interval(stats.mean, x) == (point, lo, hi)
    assert stats.interval(stats.mean, x, seed=1) != (point, lo, hi)
