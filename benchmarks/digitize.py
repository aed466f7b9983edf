"""Read the authors' published curves off their figures into `results/published/{env}.csv`, so
that `benchmarks/plot.py` can draw them beside ours.

Source: Zhong et al., "Heterogeneous-Agent Reinforcement Learning", JMLR 25 (2024)
(arXiv 2304.09870; code PKU-MARL/HARL). The curves are published only as figures (PNG,
1180 x 580 pixels):
- football (`--football PNG`): the score-rate curves of HAPPO and MAPPO on five GRF scenarios;
- MPE, the learning-curve figure of Reference / Speaker Listener / Spread, continuous (top row)
  and discrete (bottom row) (`--mpe PNG`): the two Spread panels are read, HAPPO, MAPPO, HATRPO,
  HAA2C and, on continuous spread, HATD3. Their returns are of PettingZoo 1.22's
  simple_spread_v2, which counts each agent's collision with itself (-1.5 a step of team reward
  with 3 agents, over 25 steps): + 37.5 gives our mpe2 scale.

Each panel's axes are located by its grid lines (found once by the grey pixel columns and rows;
listed in FOOTBALL_PANELS, MPE_PANELS), each curve by its colour (`line_masks`,
`mpe_line_masks`). In each pixel column the line is the median row of the largest run of
adjacent pixels of its colour, so that a stray pixel of a mixed colour at another line's edge
does not move it; a column far from its neighbours' median, or with fewer than two neighbours
read (`outliers`: the line hidden there, a stray run read instead), is left empty. The shaded
bands are too pale to pass the thresholds; the legend boxes are left out (continuous spread's
HAA2C line runs behind its legend after about 7.4M steps, so it stops there; discrete spread's
HATRPO line is hidden under HAPPO's for most of its last 2M steps). A pixel column is about 82k
env steps on football (164k on counterattack hard) and 33k on MPE; a pixel row is 0.45 points of
score rate and 0.31 of MPE return, so the CSVs are approximate: the script prints each curve's
end beside the value the paper states. Each CSV's first line names its source.

    python benchmarks/digitize.py --football FOOTBALL_FIGURE.png --mpe MPE_FIGURE.png
"""

from __future__ import annotations

import argparse
import csv
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SOURCE = ('Zhong et al., "Heterogeneous-Agent Reinforcement Learning", JMLR 2024 (arXiv 2304.09870), '
          "repository PKU-MARL/HARL")
SPREAD_SHIFT = 37.5  # simple_spread_v2 return + 37.5 = mpe2 simple_spread_v3 return (N = 3, 25 steps)


class Panel(NamedTuple):
    x0: int  # pixel column of step 0
    x1: int  # pixel column of the last x grid line
    x1_step: float  # its step
    row_a: int  # pixel rows of two y grid lines and their values
    value_a: float
    row_b: int
    value_b: float
    bottom: float  # the y axis' range (rows outside it are not read)
    top: float
    shift: float = 0.0  # added to every value read
    legend: tuple[int, int, int, int] | None = None  # (x from, x to, y from, y to) of the legend box
    hidden_from: dict[str, float] = {}  # algorithm: the step from which its line runs behind the legend


FOOTBALL_PANELS = {
    "grf_ps": Panel(65, 370, 2.5e7, 247, 0.0, 26, 1.0, 0.0, 1.0),
    "grf_rps": Panel(460, 765, 2.5e7, 247, 0.0, 26, 1.0, 0.0, 1.0),
    "grf_3v1": Panel(855, 1160, 2.5e7, 247, 0.0, 26, 1.0, 0.0, 1.0),
    "grf_ca_easy": Panel(65, 370, 2.5e7, 540, 0.0, 318, 1.0, 0.0, 1.0),
    "grf_ca_hard": Panel(460, 765, 5e7, 540, 0.0, 318, 1.0, 0.0, 1.0),
}
MPE_PANELS = {  # grid lines at -60 and -110 (paper scale); axes -120 to -50
    "mpe_spread_continuous": Panel(861, 1160, 1e7, 57, -60.0, 216, -110.0, -120.0, -50.0, SPREAD_SHIFT,
                                   (1083, 1171, 129, 246), {"haa2c": 7.4e6}),
    "mpe_spread": Panel(859, 1160, 1e7, 350, -60.0, 508, -110.0, -120.0, -50.0, SPREAD_SHIFT,
                        (1087, 1171, 475, 537)),
}


def line_masks(rgb: np.ndarray) -> dict[str, np.ndarray]:
    """Pixels of each algorithm's line in the football figure, by colour (rgb as integers 0-255)."""
    r, g, b = (rgb[..., k].astype(int) for k in range(3))
    return {"happo": (b - np.maximum(r, g) > 80) & (g < 120),  # dark blue; QMIX's cyan has g > 120
            "mappo": g - np.maximum(r, b) > 50}


def mpe_line_masks(rgb: np.ndarray) -> dict[str, np.ndarray]:
    """Pixels of each algorithm's line in the MPE figure: the football figure's HAPPO blue and
    MAPPO green, HATRPO orange, HAA2C plum (pale: a little redder and bluer than green, darker
    than its band and than HAPPO's lavender band) and HATD3 magenta (MATD3's purple beside it is darker in red)."""
    r, g, b = (rgb[..., k].astype(int) for k in range(3))
    return {**line_masks(rgb),
            "hatrpo": (r - b > 90) & (g - b > 70) & (r >= g - 10) & (r > 170) & (r < 240),
            "haa2c": (r - g >= 14) & (b - g >= 14) & (abs(r - b) <= 12) & (r <= 215) & (b <= 220) & (g > 120),
            "hatd3": (r > 185) & (b > 185) & (g < 110)}


def row_of(panel: Panel, value: float) -> float:
    return panel.row_a + (value - panel.value_a) / (panel.value_b - panel.value_a) * (panel.row_b - panel.row_a)


def largest_run(rows: np.ndarray) -> np.ndarray:
    """The longest run of adjacent rows (the first, if several are as long) of sorted rows."""
    runs = np.split(rows, np.nonzero(np.diff(rows) > 1)[0] + 1)
    return max(runs, key=len)


def read_panel(masks: dict[str, np.ndarray], panel: Panel) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Steps and, per algorithm, the value at each pixel column of the panel (shifted by
    panel.shift): the median row of the largest run of the line's pixels in that column, NaN
    where the line is hidden."""
    columns = np.arange(panel.x0, panel.x1 + 1)
    steps = (columns - panel.x0) / (panel.x1 - panel.x0) * panel.x1_step
    top, bottom = int(np.ceil(row_of(panel, panel.top))), int(row_of(panel, panel.bottom))
    curves = {}
    for algo, mask in masks.items():
        mask = mask.copy()
        if panel.legend:
            xa, xb, ya, yb = panel.legend
            mask[ya:yb + 1, xa:xb + 1] = False
        if algo in panel.hidden_from:
            mask[:, panel.x0 + int(round(panel.hidden_from[algo] / panel.x1_step * (panel.x1 - panel.x0))):] = False
        line = np.full(len(columns), np.nan)
        for k, x in enumerate(columns):
            rows = np.nonzero(mask[top:bottom + 1, x])[0] + top
            if len(rows):
                line[k] = np.median(largest_run(rows))
        line[outliers(line)] = np.nan
        curves[algo] = panel.value_a + (line - panel.row_a) / (panel.row_b - panel.row_a) * (
            panel.value_b - panel.value_a) + panel.shift
    return steps, curves


def outliers(line: np.ndarray, half_window: int = 5, rows: float = 6) -> np.ndarray:
    """Columns read that are more than `rows` from the median of the others within half_window
    of them, or have fewer than two others there: where the line is hidden in a column, the
    largest run may be a few pixels of mixed colour at another line's edge. The median of a
    window keeps a steep but monotone rise."""
    padded = np.pad(line, half_window, constant_values=np.nan)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half_window + 1)
    others = np.delete(windows, half_window, axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # windows with no pixel: NaN
        far = np.abs(line - np.nanmedian(others, axis=1)) > rows
    return ~np.isnan(line) & (far | ((~np.isnan(others)).sum(1) < 2))


def write_csv(path: Path, steps: np.ndarray, curves: dict[str, np.ndarray], source: str, digits: int) -> None:
    """step and one column per algorithm (empty where hidden), after a '#' line naming the source."""
    with path.open("w", newline="") as f:
        f.write(f"# {source}\n")
        writer = csv.writer(f)
        writer.writerow(["step", *curves])
        for k, step in enumerate(steps):
            writer.writerow([int(step), *("" if np.isnan(c[k]) else f"{c[k]:.{digits}f}" for c in curves.values())])


def main(argv=None) -> None:
    import matplotlib.image

    from plot import PUBLISHED  # the values the paper states, to check the reading against

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--football", type=Path, help="the authors' football learning-curve figure (PNG)")
    parser.add_argument("--mpe", type=Path, help="the authors' MPE learning-curve figure (PNG)")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "published", help="directory of the CSVs")
    opts = parser.parse_args(argv)
    jobs = [(opts.football, FOOTBALL_PANELS, line_masks, "football learning-curve figure", 3),
            (opts.mpe, MPE_PANELS, mpe_line_masks,
             "MPE learning-curve figure, Spread panels, +37.5 to the mpe2 scale", 2)]
    if not any(figure for figure, *_ in jobs):
        raise SystemExit("give --football and/or --mpe: the authors' figures (PNG)")
    opts.out.mkdir(parents=True, exist_ok=True)
    for figure, panels, masks_of, name, digits in jobs:
        if figure is None:
            continue
        if not figure.exists():
            raise SystemExit(f"{figure} not found")
        masks = masks_of(np.round(matplotlib.image.imread(figure)[..., :3] * 255))
        for env, panel in panels.items():
            steps, curves = read_panel(masks, panel)
            curves = {algo: c for algo, c in curves.items() if not np.isnan(c).all()}  # not in this panel
            path = opts.out / f"{env}.csv"
            write_csv(path, steps, curves, f"read off {SOURCE}, {name}, by benchmarks/digitize.py", digits)
            ends = ", ".join(f"{algo} {c[~np.isnan(c)][-6:].mean():.{digits}f} at {steps[~np.isnan(c)][-1]:,.0f}"
                             + (f" (paper {PUBLISHED[env][algo]:.{digits}f})" if algo in PUBLISHED.get(env, {}) else "")
                             for algo, c in curves.items())
            print(f"wrote {path}; the mean of each curve's last 6 columns read: {ends}")


if __name__ == "__main__":
    main()
