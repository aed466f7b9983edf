"""Read the authors' published football curves off their figure (HARL paper, Figure 7;
`../shared/reference/football_learning_curve.png`) into `results/published/{env}.csv`, so that
`benchmarks/plot.py` can draw them beside ours.

The authors publish the curves only as this PNG (1180 x 580 pixels). Each panel's axes are
located by its grid lines (found once by the grey pixel columns and rows; listed in PANELS), and
each curve by its colour: the HAPPO line is dark blue, the MAPPO line green, and their shaded
bands are too pale to pass the thresholds. A pixel column is about 82k env steps (164k on
counterattack hard) and a pixel row 0.45 points of score rate, so the CSVs are approximate: the
script prints each curve's end beside the value the paper states.

    python benchmarks/digitize.py
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
FIGURE = REPO.parent / "shared" / "reference" / "football_learning_curve.png"

# env: (pixel column of step 0, of the last x grid line, its step; pixel row of 0%, of 100%)
PANELS = {
    "grf_ps": (65, 370, 2.5e7, 247, 26),
    "grf_rps": (460, 765, 2.5e7, 247, 26),
    "grf_3v1": (855, 1160, 2.5e7, 247, 26),
    "grf_ca_easy": (65, 370, 2.5e7, 540, 318),
    "grf_ca_hard": (460, 765, 5e7, 540, 318),
}


def line_masks(rgb: np.ndarray) -> dict[str, np.ndarray]:
    """Pixels of each algorithm's line, by colour (rgb as integers 0-255)."""
    r, g, b = (rgb[..., k].astype(int) for k in range(3))
    return {"happo": (b - np.maximum(r, g) > 80) & (g < 120),  # dark blue; QMIX's cyan has g > 120
            "mappo": g - np.maximum(r, b) > 50}


def read_panel(masks: dict[str, np.ndarray], panel) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Steps and, per algorithm, the score rate (0-1) at each pixel column of the panel: the
    median row of the line's pixels in that column, NaN where the line is hidden."""
    x0, x1, x1_step, y0, y100 = panel
    columns = np.arange(x0, x1 + 1)
    steps = (columns - x0) / (x1 - x0) * x1_step
    curves = {}
    for algo, mask in masks.items():
        values = np.full(len(columns), np.nan)
        for k, x in enumerate(columns):
            rows = np.nonzero(mask[y100:y0 + 1, x])[0] + y100
            if len(rows):
                values[k] = (y0 - np.median(rows)) / (y0 - y100)
        curves[algo] = values
    return steps, curves


def main(argv=None) -> None:
    import matplotlib.image

    from plot import PUBLISHED  # the values the paper states, to check the reading against

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--figure", type=Path, default=FIGURE, help="the authors' football figure (PNG)")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "published", help="directory of the CSVs")
    opts = parser.parse_args(argv)
    if not opts.figure.exists():
        raise SystemExit(f"{opts.figure} not found: give --figure")
    rgb = np.round(matplotlib.image.imread(opts.figure)[..., :3] * 255)
    masks = line_masks(rgb)
    opts.out.mkdir(parents=True, exist_ok=True)
    for env, panel in PANELS.items():
        steps, curves = read_panel(masks, panel)
        path = opts.out / f"{env}.csv"
        with path.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["step", *curves])
            for k, step in enumerate(steps):
                writer.writerow([int(step), *("" if np.isnan(c[k]) else f"{c[k]:.3f}" for c in curves.values())])
        ends = ", ".join(f"{algo} {c[~np.isnan(c)][-6:].mean():.3f} (paper {PUBLISHED[env][algo]:.3f})"
                         for algo, c in curves.items())
        print(f"wrote {path}; the mean of each curve's last 6 columns read: {ends}")


if __name__ == "__main__":
    main()
