"""benchmarks/plot.py on small synthetic results: the tables hold the numbers written, the
figures exist; benchmarks/digitize.py reads back curves drawn in the authors' colours."""

import sys

import numpy as np

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import digitize  # noqa: E402
import plot  # noqa: E402


def write_run(path, steps, train, evals):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        f.write("step,train,eval,wall_time,sps\n")
        for s, t, e in zip(steps, train, evals):
            f.write(f"{s},{t},{'' if np.isnan(e) else e},,\n")


def run_plot(tmp_path, out, table, like, claims, football=None):
    plot.main(["--results", str(tmp_path / "results"), "--authors", str(tmp_path / "authors"),
               "--published", str(tmp_path / "published"), "--out", str(out), "--table", str(table),
               "--like-for-like", str(like), "--improvement", str(claims),
               "--football", str(football or tmp_path / "football.md")])


def cells(path):
    return [[c.strip() for c in line.split("|")[1:-1]] for line in path.read_text().splitlines() if line.startswith("|")]


def test_table_and_figures_from_synthetic_results(tmp_path, capsys):
    """Two HAPPO seeds to 1e7 whose last 10% of evaluations average -30 and -34 (so -32, whose
    bootstrap interval over two seeds is [-34, -30]: the published -25.5 lies above it) and a
    third still running at 2e6, which must not pull the row back to its steps; one MAPPO seed to
    2e6 (shorter than the paper's runs); the authors' code: one seed whose last evaluations
    average -40. Also the like-for-like table of both implementations at 1M, 2M, 5M, 1e7, and the
    claims: HAPPO > MAPPO at MAPPO's 2e6 steps, ours > the authors' code at 1e7."""
    steps = np.arange(1, 101) * 100_000
    late = steps > 9_000_000
    for seed, level in [(1, -30.0), (2, -34.0)]:
        evals = np.where(late, level, -60.0)
        evals[1::2] = np.nan  # an evaluation every other bin
        write_run(tmp_path / "results" / "mpe_spread" / "happo" / f"seed{seed}.csv", steps,
                  np.where(late, level - 1, -70.0), evals)
    running = np.full(20, -60.0)
    running[1::2] = np.nan  # as the others: no evaluation in (0.9M, 1M]
    write_run(tmp_path / "results" / "mpe_spread" / "happo" / "seed3.csv", steps[:20], np.full(20, -70.0),
              running)  # still running: counted beside the two, not averaged into their row
    write_run(tmp_path / "results" / "mpe_spread" / "mappo" / "seed1.csv", steps[:20], np.full(20, -50.0),
              np.full(20, -45.0))
    write_run(tmp_path / "authors" / "mpe_spread" / "happo" / "seed1.csv", steps, np.full(100, -41.0),
              np.where(late, -40.0, -60.0))

    out, table, like, claims = tmp_path / "figures", tmp_path / "table.md", tmp_path / "like.md", tmp_path / "claims.md"
    run_plot(tmp_path, out, table, like, claims)

    rows = {row[1]: row for row in cells(table)[2:]}
    assert rows["HAPPO"] == ["mpe_spread", "HAPPO", "2 (+1 running)", "10,000,000", "-32.0 [-34.0, -30.0]",
                             "-32.0 [-34.0, -30.0]", "-33.0 [-35.0, -31.0]", "-25.5", "no, above", "-40.0 (1 seed)"]
    assert rows["MAPPO"] == ["mpe_spread", "MAPPO", "1", "2,000,000", "-45.0", "-45.0", "-50.0", "-20.5",
                             "not yet (shorter run)", ""]  # the authors' HAPPO curve is not MAPPO's
    assert "95% percentile bootstrap interval over seeds" in table.read_text()  # the legend says what [a, b] is
    # ours has no evaluation in (0.9M, 1M] (odd bins are NaN); no MAPPO rows: no authors' MAPPO
    header, _, *rows = cells(like)
    assert header[4:] == ["1,000,000", "2,000,000", "5,000,000", "10,000,000"]
    assert [row[2:] for row in rows] == [
        ["eval", "ours", "n/a (3)", "-60.0 [-60.0, -60.0] (3)", "-60.0 [-60.0, -60.0] (2)", "-32.0 [-34.0, -30.0] (2)"],
        ["eval", "authors' code", "-60.0 (1)", "-60.0 (1)", "-60.0 (1)", "-40.0 (1)"],
        ["eval", "ours − authors' code", "", "+0.0", "+0.0", "+8.0"],
        ["train", "ours", "-70.0 [-70.0, -70.0] (3)", "-70.0 [-70.0, -70.0] (3)", "-70.0 [-70.0, -70.0] (2)",
         "-33.0 [-35.0, -31.0] (2)"],
        ["train", "authors' code", "-41.0 (1)", "-41.0 (1)", "-41.0 (1)", "-41.0 (1)"],
        ["train", "ours − authors' code", "-29.0", "-29.0", "-29.0", "+8.0"]]
    # HAPPO's evaluations in (1.8M, 2M] are -60 (both seeds), MAPPO's -45; published -25.5 - -20.5
    # (too few seeds for a probability of improvement: each seed's value)
    assert cells(claims)[2:] == [
        ["mpe_spread", "HAPPO > MAPPO", "2,000,000", "2 / 1", "-15.0 (X: -60.0, -60.0; Y: -45.0)",
         "n/a (< 3 seeds a side)", "-5.0"],
        ["mpe_spread", "HAPPO (ours) > HAPPO (authors' code)", "10,000,000", "2 / 1", "+8.0 (X: -30.0, -34.0; Y: -40.0)",
         "n/a (< 3 seeds a side)", ""]]
    for name in ("mpe_train.png", "mpe_eval.png"):
        png = (out / name).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 10_000
    assert not (out / "football_train.png").exists()  # no football results, no football figure
    assert len(cells(tmp_path / "football.md")) == 2  # nor football rows: the header alone


def test_football_table_at_1m_2m_3m_beside_the_published_curve(tmp_path):
    """HAPPO to 2.5M steps: training bins of 100k at 0.1 per 1M steps, evaluations every 250k at
    0.2 per 1M; each checkpoint averages the bins and evaluations in its last 10% of steps (at 2M:
    the bins of 1.9M and 2M). The published curve (two points) is interpolated; 3M is blank for
    ours (not reached)."""
    steps = np.arange(1, 26) * 100_000
    evals = np.where(steps % 250_000 == 0, steps / 5e6, np.nan)
    write_run(tmp_path / "results" / "grf_ca_easy" / "happo" / "seed1.csv", steps, steps / 1e7, evals)
    (tmp_path / "published").mkdir()
    (tmp_path / "published" / "grf_ca_easy.csv").write_text("# read off a figure\nstep,happo\n500000,0.05\n3500000,0.65\n")
    football = tmp_path / "f.md"
    run_plot(tmp_path, tmp_path / "figures", tmp_path / "t.md", tmp_path / "l.md", tmp_path / "c.md", football)
    header, _, row = cells(football)
    assert header[2:5] == ["1M: train", "1M: eval", "1M: published"]
    assert row == ["grf_ca_easy", "HAPPO (1 seed)", "0.100", "0.200", "0.150", "0.195", "0.400", "0.350", "", "", "0.550",
                   "0.5M", "0.75M"]  # left the flat start: ours at its 0.1, the published line crossing 0.1
    assert (tmp_path / "figures" / "football_eval.png").exists()


def test_counterattack_hard_has_a_table_of_its_own_at_2m_to_8m(tmp_path):
    """Beside a grf_ca_easy run, a grf_ca_hard run to 4.5M steps (evaluations every 500k): its
    table has the columns 2M to 8M, blank where the run has not got yet."""
    steps = np.arange(1, 46) * 100_000
    write_run(tmp_path / "results" / "grf_ca_easy" / "happo" / "seed1.csv", steps[:30], steps[:30] / 1e7,
              steps[:30] / 1e7)
    write_run(tmp_path / "results" / "grf_ca_hard" / "happo_rga" / "seed1.csv", steps, steps / 1e8,
              np.where(steps % 500_000 == 0, steps / 1e7, np.nan))
    football = tmp_path / "f.md"
    run_plot(tmp_path, tmp_path / "figures", tmp_path / "t.md", tmp_path / "l.md", tmp_path / "c.md", football)
    easy, hard = (cells(football)[:3], cells(football)[3:])
    assert easy[0][2] == "1M: train" and easy[2][:2] == ["grf_ca_easy", "HAPPO (1 seed)"]
    assert hard[0][2:] == [*(f"{m}M: {what}" for m in (2, 4, 6, 8) for what in ("train", "eval", "published")),
                           "first eval ≥ 0.1", "published: first ≥ 0.1"]
    # training: the mean of the bins in the last 10% of the steps, (1.8M, 2M] and (3.6M, 4M]
    assert hard[2] == ["grf_ca_hard", "HAPPO-RGA (1 seed)", "0.019", "0.200", "", "0.038", "0.400", "",
                       *[""] * 6, "1M", ""]
    # a run whose evaluations are all below 0.1 so far: "not by" its last evaluation
    write_run(tmp_path / "results" / "grf_ca_hard" / "happo" / "seed1.csv", steps[:20], steps[:20] / 1e8,
              np.where(steps[:20] % 500_000 == 0, 0.05, np.nan))
    run_plot(tmp_path, tmp_path / "figures", tmp_path / "t.md", tmp_path / "l.md", tmp_path / "c.md", football)
    assert cells(football)[5][1] == "HAPPO (1 seed)" and cells(football)[5][-2:] == ["not by 2M", ""]


def test_digitize_reads_back_curves_drawn_in_the_authors_colours():
    """A white canvas with a panel laid out as in the authors' football figure: a two-pixel HAPPO
    line in their dark blue rising linearly to 0.8, a MAPPO line in their green at 0.5, and a
    pale blue band (as their shaded seeds' range) that must not be taken for a line. The reading
    returns the drawn values to within 1.5 pixel rows (a two-pixel line, rounding, the
    crossing), at the panel's steps."""
    x0, x1, y0, y100 = 50, 350, 250, 30
    canvas = np.full((300, 400, 3), 255)
    columns = np.arange(x0, x1 + 1)
    happo = 0.8 * (columns - x0) / (x1 - x0)
    rows = np.round(y0 - happo * (y0 - y100)).astype(int)
    canvas[40:60, x0:x1 + 1] = (200, 200, 255)  # band, above both lines
    canvas[rows, columns] = canvas[rows - 1, columns] = (18, 28, 151)
    canvas[y0 - 110, x0:x1 + 1] = (50, 205, 50)
    steps, curves = digitize.read_panel(digitize.line_masks(canvas),
                                        digitize.Panel(x0, x1, 2.5e7, y0, 0.0, y100, 1.0, 0.0, 1.0))
    assert steps[0] == 0 and steps[-1] == 2.5e7 and len(steps) == len(columns)
    tolerance = 1.5 / (y0 - y100)
    assert np.abs(curves["happo"] - happo).max() <= tolerance
    assert np.abs(curves["mappo"] - 0.5).max() <= tolerance


def test_digitize_reads_the_mpe_panel_onto_the_mpe2_scale(tmp_path):
    """A canvas laid out as an MPE panel (grid lines at -60 and -110 of the paper's v2 scale, 40
    rows per 10 points) with lines in the authors' MPE colours: HATD3 magenta at -65, HATRPO
    orange rising from -95 to -70, HAA2C's pale plum at -100 under HAPPO's lavender band, which
    must not be read as plum. Two plum pixels far above the line, where a column's largest run
    picks them, must be dropped as an outlier; a thicker orange line inside the legend box must
    be ignored. The values come back + 37.5 (the mpe2 scale), to within 1.5 rows (0.4 points),
    and through the CSV that plot.py reads, with its source line."""
    x0, x1, row_a, row_b = 50, 350, 50, 250
    panel = digitize.Panel(x0, x1, 1e7, row_a, -60.0, row_b, -110.0, -120.0, -50.0, 37.5, (300, 350, 240, 280))
    canvas = np.full((300, 400, 3), 255)
    columns = np.arange(x0, x1 + 1)

    def row(value):
        return np.round(digitize.row_of(panel, value)).astype(int)

    hatrpo = -95 + 25 * (columns - x0) / (x1 - x0)
    canvas[150:195, x0:x1 + 1] = (220, 206, 239)  # HAPPO's band, over the plum line's rows
    for value, colour in ((-65.0, (221, 17, 239)), (hatrpo, (211, 177, 69)), (-100.0, (200, 176, 202))):
        canvas[row(value), columns] = canvas[row(value) + 1, columns] = colour
    canvas[120:122, 100] = (200, 176, 202)  # stray plum pixels
    canvas[258:261, 305:345] = (211, 177, 69)  # the legend's HATRPO line
    steps, curves = digitize.read_panel(digitize.mpe_line_masks(canvas), panel)
    tolerance = 1.5 * 10 / 40
    assert np.abs(curves["hatd3"] - (-65 + 37.5)).max() <= tolerance
    assert np.abs(curves["hatrpo"] - (hatrpo + 37.5)).max() <= tolerance
    stray = 100 - x0
    assert np.isnan(curves["haa2c"][stray])
    assert np.abs(np.delete(curves["haa2c"], stray) - (-100 + 37.5)).max() <= tolerance
    assert np.isnan(curves["happo"]).all() and np.isnan(curves["mappo"]).all()

    path = tmp_path / "mpe_spread.csv"
    digitize.write_csv(path, steps, {"hatd3": curves["hatd3"], "haa2c": curves["haa2c"]}, "a synthetic canvas", 2)
    assert path.read_text().startswith("# a synthetic canvas\nstep,hatd3,haa2c\n")
    published = plot.load_published("mpe_spread", tmp_path)
    assert np.array_equal(published["hatd3"][0], steps.astype(int))
    assert np.abs(published["hatd3"][1] - curves["hatd3"]).max() <= 0.005
    assert len(published["haa2c"][0]) == len(columns) - 1  # the dropped column is left out
