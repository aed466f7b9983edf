"""The papers' figures and the results table, from the per-run CSVs in `results/`.

    python benchmarks/plot.py                                  # every env in results/
    python benchmarks/plot.py --envs mpe_spread mpe_spread_continuous --band std
    python benchmarks/plot.py --out /tmp/figures --table /tmp/table.md

Reads `results/{env}/{algo}/seed{N}.csv` (columns step, train, eval, wall_time, sps: one row per
bin of env-steps; `benchmarks/sweep.py` writes them) and the authors' own code trained on our
batched simulator, where there are such curves (`results/authors_on_batched/`). Writes, without
a display:
- `{out}/{family}_{train|eval}.png`: one panel per env, one colour per algorithm (the same in
  every figure), the mean over seeds as a line with a shaded band (min-max over seeds, or
  +- one std with `--band std`) where every seed has data, each seed's own thin line beyond that;
  the authors' code on the same simulator dashed in the algorithm's colour, their published
  curves (`results/published/`, read off their figures by `benchmarks/digitize.py`) dotted.
  MPE returns are on the mpe2 scale; football plots score rates against log-scaled steps.
- `{table}`: a markdown table of final values (each seed's the mean of its last 10% of
  evaluations, or of training bins): mean and interquartile mean over seeds with bootstrap
  intervals (`benchmarks/stats.py`), the authors' published values (MPE on the mpe2 scale:
  their v2 figure + 37.5) and whether each lies inside our interval, and the final values of
  their code on our simulator.
- `{like_for_like}`: ours beside the authors' code on our simulator (the same MDP) at 1M, 2M, 5M
  and 1e7 steps, eval and train, and ours minus theirs, with intervals.
- `{football}`: every football run beside the authors' published curve at 1M, 2M and 3M steps,
  training and evaluation score rates.
- `{improvement}`: the papers' claims that one algorithm beats another (and ours against the
  authors' code), per task: the difference of means and the probability of improvement, with
  intervals.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

import stats
from sweep import read_results

REPO = Path(__file__).resolve().parents[1]

# happo_rga_c16: HAPPO-RGA with C = 16 channels, the ablation of docs/ablations.md ("Channel width C")
ALGOS = ["mappo", "happo", "happo_rga", "happo_rga_c16", "hatrpo", "haa2c", "hatd3"]  # legend order
COLORS = {"mappo": "tab:blue", "happo": "tab:orange", "happo_rga": "tab:red", "happo_rga_c16": "tab:pink",
          "hatrpo": "tab:green", "haa2c": "tab:purple", "hatd3": "tab:brown"}
LABELS = {"mappo": "MAPPO", "happo": "HAPPO", "happo_rga": "HAPPO-RGA", "happo_rga_c16": "HAPPO-RGA, C = 16",
          "hatrpo": "HATRPO", "haa2c": "HAA2C", "hatd3": "HATD3"}
# The authors' published final values, read off their curves (HARL paper, JMLR
# 2024, Figure 5 for MPE, Figure 9 and Table 2 for football): MPE returns on the
# mpe2 scale (their simple_spread_v2 figure + 37.5) at 1e7 steps (HATD3: 5e6); football score
# rates (6 seeds; CA hard at 50M steps, others 25M).
PUBLISHED = {
    "mpe_spread": {"mappo": -20.5, "happo": -25.5, "hatrpo": -25.5, "haa2c": -32.5},
    "mpe_spread_continuous": {"happo": -28.5, "mappo": -32.5, "hatrpo": -33.5, "haa2c": -59.5, "hatd3": -25.5},
    "grf_ps": {"happo": 0.9693, "mappo": 0.9492},
    "grf_rps": {"happo": 0.7730, "mappo": 0.7683},
    "grf_3v1": {"happo": 0.9474, "mappo": 0.8803},
    "grf_ca_easy": {"happo": 0.9200, "mappo": 0.8776},
    "grf_ca_hard": {"happo": 0.8814, "mappo": 0.7738},
}


def paper_steps(env: str, algo: str) -> float:
    """The length of the papers' runs, where PUBLISHED was read off."""
    if env.startswith("grf"):
        return 5e7 if env == "grf_ca_hard" else 2.5e7
    return 5e6 if algo == "hatd3" else 1e7


def split_by_length(seeds: dict[int, dict], env: str, algo: str) -> tuple[dict, dict]:
    """(seeds that reached the paper's length, the others); while none has, all are the first.
    A sweep exports a run's curve on every resume, so a run still going sits in results/ beside
    finished ones: it must not pull the finished seeds' final value back to its own steps."""
    full = {seed: c for seed, c in seeds.items() if c["step"][-1] >= paper_steps(env, algo)}
    return (full, {seed: c for seed, c in seeds.items() if seed not in full}) if full else (seeds, {})


def seeds_text(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def read_curve(path: Path) -> dict[str, np.ndarray]:
    """One run's CSV as columns (step, train, eval, ...; NaN where a bin had no value): our
    format (`sweep.read_results`), or that of the reference tool's files (train_return, eval_return)."""
    with open(path) as f:
        header = f.readline().strip().split(",")
    if "train" in header:
        return read_results(path)
    data = np.genfromtxt(path, delimiter=",", names=True, ndmin=1)
    return {"step": data["step"], "train": data["train_return"], "eval": data["eval_return"]}


def load(results: Path, envs: list[str] | None) -> dict[str, dict[str, dict[int, dict]]]:
    """{env: {algo: {seed: curve}}} for every results/{env}/{algo}/seed{N}.csv."""
    runs: dict = {}
    for path in sorted(results.glob("*/*/seed*.csv")):
        env, algo = path.parts[-3], path.parts[-2]
        if env == "authors_on_batched" or (envs and env not in envs):
            continue
        runs.setdefault(env, {}).setdefault(algo, {})[int(re.findall(r"\d+", path.stem)[0])] = read_curve(path)
    return runs


def load_authors(env: str, directories: list[Path]) -> dict[str, dict[int, dict]]:
    """The authors' code on our simulator: {dir}/{env}/{algo}/seed{N}.csv (what we ran), and
    {dir}/{algo}_{discrete|continuous}_seed{N}.csv (the reference's files, spread only)."""
    out: dict = {}
    for directory in directories:
        for path in sorted((directory / env).glob("*/seed*.csv")):
            out.setdefault(path.parts[-2], {})[int(re.findall(r"\d+", path.stem)[0])] = read_curve(path)
        kind = {"mpe_spread": "discrete", "mpe_spread_continuous": "continuous"}.get(env)
        for path in sorted(directory.glob(f"*_{kind}_seed*.csv")) if kind else []:
            algo, seed = re.fullmatch(rf"(\w+)_{kind}_seed(\d+)\.csv", path.name).groups()
            out.setdefault(algo, {}).setdefault(int(seed), read_curve(path))
    return out


def load_published(env: str, directory: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The authors' published curves of `env`, read off their figure by `benchmarks/digitize.py`
    ({directory}/{env}.csv): {algo: (steps, values)}, the points where the line was visible."""
    path = directory / f"{env}.csv"
    if not path.exists():
        return {}
    lines = [line for line in path.read_text().splitlines() if not line.startswith("#")]  # '#': the source
    names = lines[0].split(",")
    data = np.array([[float(v) if v else np.nan for v in line.split(",")] for line in lines[1:]])
    data = data.reshape(-1, len(names))
    return {algo: (data[~np.isnan(data[:, k]), 0], data[~np.isnan(data[:, k]), k])
            for k, algo in enumerate(names) if k}


def aligned(seeds: dict[int, dict], key: str):
    """The seeds' `key` curves on one grid of steps (the bins' ends), NaN-free points only:
    (grid, values (seeds, grid) with NaN where a seed has no data), interpolated linearly
    between a seed's own points, never extrapolated."""
    points = [(c["step"][~np.isnan(c[key])], c[key][~np.isnan(c[key])]) for c in seeds.values()]
    points = [(s, v) for s, v in points if len(s)]
    if not points:
        return np.array([]), np.zeros((0, 0))
    grid = np.unique(np.concatenate([s for s, _ in points]))
    values = np.full((len(points), len(grid)), np.nan)
    for k, (s, v) in enumerate(points):
        inside = (grid >= s[0]) & (grid <= s[-1])
        values[k, inside] = np.interp(grid[inside], s, v)
    return grid, values


def final(curve: dict, key: str, at: float) -> float:
    """Mean of a run's `key` points (evaluations, or training bins) in the last 10% of the steps
    up to `at`: (0.9 at, at]. NaN if the run has none there."""
    step, value = curve["step"], curve[key]
    window = ~np.isnan(value) & (step > 0.9 * at) & (step <= at)
    return float(value[window].mean()) if window.any() else np.nan


def valid(values) -> list[float]:
    return [v for v in values if not np.isnan(v)]


def with_interval(statistic, digits: int, *groups, sign: str = "") -> str:
    """statistic of the groups' non-NaN values and its bootstrap interval, "x [lo, hi]" ("" if a
    group has none; no interval where one has a single value). sign "+" marks positive values."""
    groups = [valid(g) for g in groups]
    if not all(groups):
        return ""
    point, lo, hi = stats.interval(statistic, *groups)
    text = f"{point:{sign}.{digits}f}"
    return text if np.isnan(lo) else f"{text} [{lo:{sign}.{digits}f}, {hi:{sign}.{digits}f}]"


def draw(ax, seeds: dict[int, dict], key: str, color, label: str | None, band: str | None,
         linestyle: str = "-") -> None:
    """The mean over seeds where every seed has data (with the band, if any), each seed's own thin
    line beyond that; with no label, a faint line outside the legend."""
    grid, values = aligned(seeds, key)
    if not len(grid):
        return
    common = ~np.isnan(values).any(0)
    if common.any():
        mean = values[:, common].mean(0)
        ax.plot(grid[common], mean, color=color, linestyle=linestyle, linewidth=1.5 if band else 1,
                alpha=1 if label else 0.6, label=f"{label} ({seeds_text(len(values))})" if label else None)
        if band:
            lo, hi = ((values[:, common].min(0), values[:, common].max(0)) if band == "minmax" else
                      (mean - values[:, common].std(0), mean + values[:, common].std(0)))
            ax.fill_between(grid[common], lo, hi, color=color, alpha=0.2, linewidth=0)
    beyond = grid > grid[common].max() if common.any() else np.ones(len(grid), bool)
    for seed_values in values:  # seeds that ran longer than the others
        if (beyond & ~np.isnan(seed_values)).any():
            ax.plot(grid[beyond], seed_values[beyond], color=color, linestyle=linestyle, linewidth=0.7, alpha=0.6)


def plot(runs, authors: list[Path], published: Path, envs: list[str], key: str, band: str, path: Path,
         football: bool, algos: list[str] | None = None) -> None:
    """One panel per env: our runs (mean over seeds, band across them), the authors' code on our
    simulator (dashed) and the published curves (dotted); `algos`: only these algorithms."""
    keep = (lambda algo: True) if algos is None else (lambda algo: algo in algos)
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(envs), figsize=(5.5 * len(envs), 5.4), squeeze=False)
    for ax, env in zip(axes[0], envs):
        for algo in [a for a in [*ALGOS, *sorted(set(runs[env]) - set(ALGOS))] if a in runs[env] and keep(a)]:
            full, shorter = split_by_length(runs[env][algo], env, algo)
            draw(ax, full, key, COLORS.get(algo, "black"), LABELS.get(algo, algo), band)
            for curve in shorter.values():  # runs still going: thin, outside the mean
                draw(ax, {0: curve}, key, COLORS.get(algo, "black"), None, None)
        for algo, seeds in [(a, s) for a, s in load_authors(env, authors).items() if keep(a)]:
            draw(ax, seeds, key, COLORS.get(algo, "black"), f"{LABELS.get(algo, algo)}, authors' code", None, "--")
        for algo, (steps, values) in [(a, c) for a, c in load_published(env, published).items() if keep(a)]:
            ax.plot(steps, values, color=COLORS.get(algo, "black"), linestyle=":", linewidth=1.2,
                    label=f"{LABELS.get(algo, algo)}, published (read off the figure)")
        ax.set_title(env)
        if football:  # runs on a laptop cover the first few percent of the papers' 25M-50M steps
            ax.set_xscale("log")
        ax.set_xlabel("env steps" + (" (log scale)" if football else ""))
        ax.set_ylabel(("score rate" if football else "episode return (mpe2 scale)") + f", {key}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.16))  # below: no curve hidden
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


WITHIN = ("published in our interval: yes if the published value lies inside the interval of our eval mean; "
          "above / below: outside it, on that side; not yet: our runs are shorter than the paper's")


def table(runs, authors: list[Path], envs: list[str]) -> str:
    """Markdown: per env and algorithm, at the steps every seed of ours reached (of the seeds that
    reached the paper's length, if any; the others are counted as running): our final eval (mean
    and IQM) and train (mean) over seeds with their intervals, the published value (at the
    paper's full length) and whether it lies inside the interval of our eval mean, and the
    authors' code on our simulator at the same steps (the seeds of theirs that got there)."""
    lines = ["| env | algorithm | seeds | at steps | eval (ours): mean | eval (ours): IQM | train (ours): mean "
             "| published | published in our interval | authors' code, our simulator (eval): mean |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|---:|"]
    for env in envs:
        theirs_of, digits = load_authors(env, authors), 3 if env.startswith("grf") else 1
        for algo in [a for a in ALGOS if a in runs.get(env, {})]:
            full, shorter = split_by_length(runs[env][algo], env, algo)
            seeds = full.values()
            at = min(c["step"][-1] for c in seeds)
            ev = valid([final(c, "eval", at) for c in seeds])
            published = PUBLISHED.get(env, {}).get(algo)
            if published is None or not ev:
                within = ""
            elif at < paper_steps(env, algo):
                within = "not yet (shorter run)"
            elif len(ev) == 1:
                within = "n/a (1 seed)"
            else:
                _, lo, hi = stats.interval(stats.mean, ev)
                within = "yes" if lo <= published <= hi else ("no, above" if published > hi else "no, below")
            theirs = [final(c, "eval", at) for c in theirs_of.get(algo, {}).values() if c["step"][-1] >= at]
            count = f"{len(seeds)}" + (f" (+{len(shorter)} running)" if shorter else "")
            lines.append(
                f"| {env} | {LABELS.get(algo, algo)} | {count} | {int(at):,} | {with_interval(stats.mean, digits, ev)} | "
                f"{with_interval(stats.iqm, digits, ev)} | "
                f"{with_interval(stats.mean, digits, [final(c, 'train', at) for c in seeds])} | "
                f"{'' if published is None else f'{published:.{digits}f}'} | {within} | "
                f"{f'{with_interval(stats.mean, digits, theirs)} ({seeds_text(len(theirs))})' if theirs else ''} |")
    return "\n".join(lines) + f"\n\n{stats.LEGEND}. {stats.IQM_LEGEND}. {WITHIN}.\n"


def summary(runs, authors: list[Path], envs: list[str]) -> str:
    """Markdown, the README's: per algorithm (and the authors' code on our simulator), each env's
    final eval (mean over seeds [interval], as `table`) beside the published value."""
    lines = ["| algorithm | " + " | ".join(f"`{env}` (seeds) | published" for env in envs) + " |",
             "|---|" + "---:|---:|" * len(envs)]

    def cell(seeds: dict, env: str, algo: str) -> str:
        full, _ = split_by_length(seeds, env, algo)
        at = min(paper_steps(env, algo), *(c["step"][-1] for c in full.values()))  # as `table`: no later
        ev = [final(c, "eval", at) for c in full.values() if c["step"][-1] >= at]
        shorter = "" if at >= paper_steps(env, algo) else f" at {at / 1e6:g}M"
        return f"{with_interval(stats.mean, 1, ev)} ({len(ev)}){shorter}" if valid(ev) else ""

    rows = [(LABELS.get(a, a), a, {env: runs.get(env, {}).get(a) for env in envs}) for a in ALGOS
            if any(a in runs.get(env, {}) for env in envs)]
    for algo in [a for a in ALGOS if any(a in load_authors(env, authors) for env in envs)]:
        rows.insert(next(i for i, row in enumerate(rows) if row[1] == algo) + 1 if algo in [r[1] for r in rows]
                    else len(rows), (f"{LABELS.get(algo, algo)}, the authors' code on our simulator", algo,
                                     {env: load_authors(env, authors).get(algo) for env in envs}))
    for label, algo, by_env in rows:
        cells = []
        for env, seeds in by_env.items():
            published = PUBLISHED.get(env, {}).get(algo) if "authors' code" not in label else None
            cells += [cell(seeds, env, algo) if seeds else "", "" if published is None else f"{published:.1f}"]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + (f"\n\nThe mean over seeds of each seed's last 10% of evaluations (mpe2 scale) at the "
                               f"papers' length (1e7 steps; HATD3 5e6), with its 95% bootstrap interval over seeds; "
                               f"the number of seeds in brackets.\n")


def like_for_like(runs, authors: list[Path], envs: list[str], checkpoints=(1e6, 2e6, 5e6, 1e7)) -> str:
    """Markdown: every algorithm that the authors' code was also run for on our simulator, both
    implementations and ours minus theirs at each checkpoint, eval and train: the mean over the
    seeds that got there (their number in brackets) with its interval, each seed's value the
    mean of its last 10% of steps up to the checkpoint (as `final`)."""
    lines = ["| env | algorithm | measure | implementation | " + " | ".join(f"{at:,.0f}" for at in checkpoints) + " |",
             "|---|---|---|---|" + "---|" * len(checkpoints)]
    for env in envs:
        digits = 3 if env.startswith("grf") else 1
        for algo, theirs in load_authors(env, authors).items():
            both = {"ours": runs.get(env, {}).get(algo, {}), "authors' code": theirs}
            for key in ("eval", "train"):
                values = {name: {at: [final(c, key, at) for c in seeds.values() if c["step"][-1] >= at]
                                 for at in checkpoints} for name, seeds in both.items()}
                for name, by_step in values.items():
                    cells = [f"{with_interval(stats.mean, digits, v) or 'n/a'} ({len(v)})" if v else ""
                             for v in by_step.values()]
                    lines.append(f"| {env} | {LABELS.get(algo, algo)} | {key} | {name} | " + " | ".join(cells) + " |")
                cells = [with_interval(stats.mean_difference, digits, values["ours"][at], values["authors' code"][at],
                                       sign="+") for at in checkpoints]
                lines.append(f"| {env} | {LABELS.get(algo, algo)} | {key} | ours − authors' code | "
                             + " | ".join(cells) + " |")
    return "\n".join(lines) + (f"\n\n{stats.LEGEND}; ours − authors' code: the difference of the means, "
                               "each implementation's seeds resampled on their own.\n")


# The steps each football env's table shows: the first 3M steps of the 25M-step presets; on
# counterattack hard, where the published curve is flat for 2M steps and rises late, to 8M.
FOOTBALL_CHECKPOINTS = {"grf_ca_hard": (2e6, 4e6, 6e6, 8e6)}
DEFAULT_CHECKPOINTS = (1e6, 2e6, 3e6)


# A football run has left its flat start at its first evaluation at or above this score rate.
FLAT_START = 0.1


def left_flat_start(curve: dict, interpolate: bool = False) -> str:
    """The step of the curve's first evaluation at or above FLAT_START, in millions ("not by" its
    last evaluation where none is); `interpolate`: where the line between two points crosses it
    (a published curve, read off a figure)."""
    steps, values = curve["step"][~np.isnan(curve["eval"])], curve["eval"][~np.isnan(curve["eval"])]
    above = np.flatnonzero(values >= FLAT_START)
    if not len(steps):
        return ""
    if not len(above):
        return f"not by {steps[-1] / 1e6:g}M"
    k = above[0]
    at = steps[k]
    if interpolate and k > 0:
        at = np.interp(FLAT_START, values[k - 1:k + 1], steps[k - 1:k + 1])
    return f"{round(at / 1e6, 2):g}M"


def football_table(runs, published: Path, envs: list[str]) -> str:
    """Markdown: per football env (a table each, at its FOOTBALL_CHECKPOINTS) and algorithm, at
    each checkpoint the seeds reached, our training and evaluation score rates (each seed's the
    mean of its last 10% of steps up to the checkpoint, as `final`; with intervals over several
    seeds) beside the authors' published curve there."""
    def header(checkpoints):
        return ["| env | algorithm | " + " | ".join(f"{at / 1e6:g}M: {what}" for at in checkpoints
                                                  for what in ("train", "eval", "published"))
                + f" | first eval ≥ {FLAT_START} | published: first ≥ {FLAT_START} |",
                "|---|---|" + "---:|" * (3 * len(checkpoints) + 2)]

    tables = []
    for env in [e for e in envs if e.startswith("grf")]:
        checkpoints = FOOTBALL_CHECKPOINTS.get(env, DEFAULT_CHECKPOINTS)
        lines, curves = header(checkpoints), load_published(env, published)
        for algo in [a for a in ALGOS if a in runs.get(env, {})]:
            cells = []
            for at in checkpoints:
                seeds = [c for c in runs[env][algo].values() if c["step"][-1] >= at]
                ours = [with_interval(stats.mean, 3, [final(c, key, at) for c in seeds]) for key in ("train", "eval")]
                steps, values = curves.get(algo, (np.array([]), np.array([])))
                theirs = f"{np.interp(at, steps, values):.3f}" if len(steps) and steps[0] <= at <= steps[-1] else ""
                cells += [*(ours if seeds else ["", ""]), theirs]
            cells += [", ".join(left_flat_start(c) for _, c in sorted(runs[env][algo].items())),
                      left_flat_start({"step": steps, "eval": values}, interpolate=True) if len(steps) else ""]
            if any(cells):
                seeds = len(runs[env][algo])
                lines.append(f"| {env} | {LABELS.get(algo, algo)} ({seeds_text(seeds)}) | " + " | ".join(cells) + " |")
        tables.append("\n".join(lines))
    return "\n\n".join(tables or ["\n".join(header(DEFAULT_CHECKPOINTS))]) + (
        "\n\nScore rates: the fraction of episodes that end with a goal. Ours: each seed's mean over the last 10% "
        "of the steps up to the checkpoint (training bins of 100k steps; evaluations of 100 episodes with the "
        "deterministic policy, every 250k steps, on grf_ca_hard every 500k); blank where no seed got there. "
        f"First eval ≥ {FLAT_START}: where each seed's evaluations left the flat start, the first at or above "
        f"{FLAT_START} (\"not by\" the last so far where none is); published: where the authors' curve first "
        f"reaches {FLAT_START}. "
        f"{stats.LEGEND}. Published: the authors' curve (HARL, JMLR 2024, football figure; `results/published/`) "
        "at the checkpoint.\n")


def probes(results: Path, env: str, steps: str, *words: str) -> str:
    """Markdown: short probe runs side by side at `steps` on `env`, one row per word: an algorithm
    (results/{env}/{algo}/) or a results directory of its own (`ablations/rga_channels_64`:
    results/ablations/rga_channels_64/{env}/{its one algo}/); `seeds=2,3` keeps those seeds. Per
    row each seed's training value, the means of train and eval over the seeds (each seed's the
    mean of its last 10% of steps up to `steps`, as `final`) and their difference to the first row."""
    at = float(steps)
    keep = next(({int(s) for s in w[6:].split(",")} for w in words if w.startswith("seeds=")), None)
    rows = []  # (label, {seed: curve})
    for word in [w for w in words if not w.startswith("seeds=")]:
        directory = results / env / word if word in ALGOS else next((results / word / env).iterdir())
        label = LABELS[word] if word in ALGOS else f"`{word}`"
        seeds = {int(re.findall(r"\d+", p.stem)[0]): read_curve(p) for p in sorted(directory.glob("seed*.csv"))}
        rows.append((label, {s: c for s, c in seeds.items() if (keep is None or s in keep) and c["step"][-1] >= at}))
    first = rows[0][0]
    lines = [f"| run | seeds | train, each seed | train: mean | eval: mean | train − {first} | eval − {first} |",
             "|---|---|---|---:|---:|---:|---:|"]
    values = [{key: [final(c, key, at) for c in seeds.values()] for key in ("train", "eval")} for _, seeds in rows]
    for (label, seeds), v in zip(rows, values):
        differences = ["" if v is values[0] else with_interval(stats.mean_difference, 1, v[key], values[0][key], sign="+")
                       for key in ("train", "eval")]
        lines.append(f"| {label} | {', '.join(map(str, seeds))} | {', '.join(f'{t:.1f}' for t in v['train'])} | "
                     f"{with_interval(stats.mean, 1, v['train'])} | {with_interval(stats.mean, 1, v['eval'])} | "
                     + " | ".join(differences) + " |")
    return "\n".join(lines) + (f"\n\nAt {at:,.0f} steps on {env}: each seed's mean of its training bins and "
                               f"evaluations in the last 10% of the steps up to there. {stats.LEGEND}; each row's "
                               "seeds resampled on their own in a difference.\n")


# Fewer seeds than this on either side of a claim: no probability of improvement, each seed's value.
MIN_SEEDS = 3
# The papers' comparative claims, as (X, Y): X ends above Y (HAPPO-RGA level with or slightly
# above HAPPO; HAPPO above MAPPO and HATRPO, as on continuous spread's published curves).
CLAIMS = [("happo_rga", "happo"), ("happo", "mappo"), ("happo", "hatrpo")]


def improvement(runs, authors: list[Path], envs: list[str]) -> str:
    """Markdown: per env, each claim X > Y with both algorithms run, at the steps every seed of
    both reached (of those that reached the paper's length, as in `table`), and ours > the
    authors' code on our simulator, per algorithm, at our steps (their seeds that got there):
    the difference of the means of the final evaluations and the probability of improvement
    P(X > Y), with intervals (with fewer than MIN_SEEDS seeds a side, each seed's value instead),
    beside the published difference where the paper gives both."""
    lines = ["| env | claim | at steps | seeds | X − Y: mean | P(X > Y) | published X − Y |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for env in envs:
        digits, ours = 3 if env.startswith("grf") else 1, runs.get(env, {})
        full = {algo: split_by_length(seeds, env, algo)[0] for algo, seeds in ours.items()}
        rows = []  # (claim, X's seeds, Y's seeds, steps, published X − Y)
        for x, y in [(x, y) for x, y in CLAIMS if x in ours and y in ours]:
            published = PUBLISHED.get(env, {})
            rows.append((f"{LABELS[x]} > {LABELS[y]}", full[x], full[y],
                         min(c["step"][-1] for c in [*full[x].values(), *full[y].values()]),
                         f"{published[x] - published[y]:+.{digits}f}" if x in published and y in published else ""))
        for algo, theirs in load_authors(env, authors).items():
            if algo in ours:
                name = LABELS.get(algo, algo)
                rows.append((f"{name} (ours) > {name} (authors' code)", full[algo], theirs,
                             min(c["step"][-1] for c in full[algo].values()), ""))
        for claim, x_seeds, y_seeds, at, gap in rows:
            xs, ys = ([final(c, "eval", at) for c in seeds.values() if c["step"][-1] >= at] for seeds in (x_seeds, y_seeds))
            xs, ys = valid(xs), valid(ys)
            if not (xs and ys):
                continue
            if min(len(xs), len(ys)) >= MIN_SEEDS:
                gain, p = (with_interval(stats.mean_difference, digits, xs, ys, sign="+"),
                           with_interval(stats.improvement, 2, xs, ys))
            else:  # too few seeds for a probability: each seed's value instead
                each = "; ".join(f"{'XY'[k]}: {', '.join(f'{v:.{digits}f}' for v in group)}" for k, group in enumerate((xs, ys)))
                gain, p = f"{np.mean(xs) - np.mean(ys):+.{digits}f} ({each})", f"n/a (< {MIN_SEEDS} seeds a side)"
            lines.append(f"| {env} | {claim} | {int(at):,} | {len(xs)} / {len(ys)} | {gain} | {p} | {gap} |")
    return "\n".join(lines) + (
        f"\n\nFinal evaluations as in `table.md`. {stats.LEGEND}; each group's seeds resampled on their own. "
        "P(X > Y): the probability that a seed of X ends above a seed of Y, over all pairs of their seeds, "
        "ties a half (the probability of improvement of Agarwal et al., NeurIPS 2021): 0.5 is even, 1 every "
        f"seed of X above every seed of Y; given with at least {MIN_SEEDS} seeds a side, otherwise each seed's final "
        "evaluation follows the difference of the means.\n")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, default=REPO / "results")
    parser.add_argument("--authors", type=Path, nargs="*", default=None,
                        help="directories of the authors' code's curves on our simulator "
                             "(default: RESULTS/authors_on_batched)")
    parser.add_argument("--published", type=Path, default=REPO / "results" / "published",
                        help="directory of the published curves read off the authors' figures (benchmarks/digitize.py)")
    parser.add_argument("--envs", nargs="*", help="env ids to draw (default: every env in --results)")
    parser.add_argument("--band", choices=("minmax", "std"), default="minmax", help="shaded band across seeds")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "figures", help="directory of the PNGs")
    parser.add_argument("--table", type=Path, default=REPO / "results" / "table.md", help="markdown table file")
    parser.add_argument("--like-for-like", type=Path, default=REPO / "results" / "like_for_like.md",
                        help="markdown table of ours and the authors' code on our simulator at 1M, 2M, 5M, 1e7 steps")
    parser.add_argument("--football", type=Path, default=REPO / "results" / "football.md",
                        help="markdown tables of the football runs and the published curves at 1M, 2M and 3M steps "
                             "(grf_ca_hard: 2M, 4M, 6M and 8M)")
    parser.add_argument("--improvement", type=Path, default=REPO / "results" / "improvement.md",
                        help="markdown table of the papers' claims X > Y: differences and probabilities of improvement")
    opts = parser.parse_args(argv)
    runs = load(opts.results, opts.envs)
    authors = opts.authors if opts.authors is not None else [opts.results / "authors_on_batched"]
    if not runs:
        raise SystemExit(f"no results/{{env}}/{{algo}}/seed{{N}}.csv under {opts.results}")
    envs = sorted(runs)
    for family, members in [("mpe", [e for e in envs if e.startswith("mpe")]),
                            ("football", [e for e in envs if e.startswith("grf")])]:
        for key in ("train", "eval"):
            if members:
                path = opts.out / f"{family}_{key}.png"
                plot(runs, authors, opts.published, members, key, opts.band, path, football=family == "football")
                print(f"wrote {path}")
    mpe = [e for e in envs if e.startswith("mpe")]
    for algo in [a for a in ALGOS if any(a in runs[e] for e in mpe)]:  # each algorithm's page shows its own
        path = opts.out / f"{algo}.png"
        plot(runs, authors, opts.published, [e for e in mpe if algo in runs[e]], "eval", opts.band, path,
             football=False, algos=[algo])
        print(f"wrote {path}")
    opts.table.parent.mkdir(parents=True, exist_ok=True)
    opts.table.write_text(table(runs, authors, envs))
    print(f"wrote {opts.table}\n")
    print(opts.table.read_text())
    for path, text in ((opts.like_for_like, like_for_like(runs, authors, envs)),
                       (opts.improvement, improvement(runs, authors, envs)),
                       (opts.football, football_table(runs, opts.published, envs))):
        path.write_text(text)
        print(f"wrote {path}\n")
        print(text)


if __name__ == "__main__":
    main()
