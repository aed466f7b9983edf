"""The results tables of README.md and docs/*.md, generated from the CSVs in `results/` into the
pages that show them, so that a page's table is always what the CSVs give.

A page asks for a table with a pair of markers; what lies between them is generated:

    <!-- table: football grf_ca_easy -->
    ...
    <!-- end table -->

    python benchmarks/tables.py           # rewrite every table between markers
    python benchmarks/tables.py --check   # exit 1, naming each page and table that differs

The tables (`benchmarks/plot.py` makes them; plot.py also writes them whole to results/*.md):
- `final ENV...`: the final values of every algorithm on those envs beside the published ones;
- `summary ENV...`: the README's short form of it, one row per algorithm, one column per env;
- `like_for_like ENV...`: ours beside the authors' code on our simulator at 1M, 2M, 5M, 1e7;
- `improvement ENV...`: the papers' claims X > Y;
- `football ENV`: a football env at its checkpoints beside the published curve;
- `speed`: what the measured commands cost (results/speed.csv, benchmarks/headline.py);
- `probes ENV STEPS ROW...`: short probe runs side by side at STEPS, a row per algorithm or
  results directory of its own (`ablations/rga_channels_64`), `seeds=2,3` keeping those seeds.
Algorithm names among the words keep only their rows: `<!-- table: final happo mpe_spread -->`.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import plot

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
BLOCK = re.compile(r"(<!-- table: (?P<spec>[^>]*?) -->\n)(?P<body>.*?)(<!-- end table -->)", re.S)


def render(spec: str, results: Path) -> str:
    """The markdown of one table, from its marker's words (`football grf_ca_easy`, say); algorithm
    names among them (`final happo mpe_spread`) keep only those algorithms' rows."""
    kind, *words = spec.split()
    if kind == "probes":
        return plot.probes(results, *words)
    algos = [w for w in words if w in plot.ALGOS]
    envs = [w for w in words if w not in algos]
    runs = {env: {algo: seeds for algo, seeds in by_algo.items() if not algos or algo in algos}
            for env, by_algo in plot.load(results, envs).items()}
    authors = [results / "authors_on_batched"]
    published = results / "published"
    if kind == "speed":
        return speed_table(results / "speed.csv")
    makers = {
        "final": lambda: plot.table(runs, authors, envs),
        "summary": lambda: plot.summary(runs, authors, envs),
        "like_for_like": lambda: plot.like_for_like(runs, authors, envs),
        "improvement": lambda: plot.improvement(runs, authors, envs),
        "football": lambda: plot.football_table(runs, published, envs),
    }
    if kind not in makers or not envs:
        raise ValueError(f"unknown table {spec!r}: give one of {', '.join(makers)} and the env ids")
    return makers[kind]()


def speed_table(path: Path) -> str:
    """results/speed.csv (benchmarks/headline.py): what each measured command costs."""
    import csv

    lines = ["| command | machine | env-steps/s | one evaluation | the whole preset | peak memory |",
             "|---|---|---:|---:|---:|---:|"]
    for r in csv.DictReader(path.open()) if path.exists() else []:
        hours = float(r["preset_hours"])
        preset = f"{hours / 24:.1f} days" if hours >= 48 else f"{hours:.1f} h"
        lines.append(f"| `{r['command']}` | {r['machine']}, {r['cores']} cores, {r['date']} | "
                     f"{int(r['env_steps_per_s']):,} | {r['evaluation_s']} s | "
                     f"{preset} ({int(r['preset_steps']) / 1e6:g}M steps) | "
                     f"{float(r['peak_memory_gb']):.1f} GB |")
    return "\n".join(lines) + ("\n\nMeasured by `python benchmarks/headline.py [COMMAND]`: the command's first "
                               "iteration and its evaluation, alone on the machine; the whole preset is its "
                               "iterations at that speed plus its evaluations.\n")


def regenerate(text: str, results: Path) -> str:
    """The page with every table between markers generated anew."""
    return BLOCK.sub(lambda m: m.group(1) + render(m.group("spec"), results) + m.group(4), text)


def stale(pages, results: Path) -> list[str]:
    """One line per table whose page differs from what the CSVs give."""
    lines = []
    for page in pages:
        text = page.read_text()
        for old, new in zip(BLOCK.finditer(text), BLOCK.finditer(regenerate(text, results))):
            if old.group("body") != new.group("body"):
                lines.append(f"{page.relative_to(REPO) if page.is_relative_to(REPO) else page}: the table "
                             f"'{old.group('spec')}' differs from what results/ gives")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a page's table differs")
    parser.add_argument("--results", type=Path, default=REPO / "results")
    parser.add_argument("pages", nargs="*", type=Path, help="the pages (default: README.md and docs/*.md)")
    opts = parser.parse_args(argv)
    pages = [p.resolve() for p in opts.pages] or PAGES
    if opts.check:
        lines = stale(pages, opts.results)
        for line in lines:
            print(line)
        if lines:
            print("regenerate them with `python benchmarks/tables.py` (a table is never edited by hand)")
        return 1 if lines else 0
    for page in pages:
        text = page.read_text()
        new = regenerate(text, opts.results)
        if new != text:
            page.write_text(new)
            print(f"wrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
