"""The documentation as a user follows it: every `python X.py --flag` command in the fenced bash
blocks of README.md and docs/*.md names a script that exists and flags that script accepts
(read from its `--help`, once per script), and every relative link and image resolves to a
file, and to a heading where it names one."""

import functools
import re
import shlex
import subprocess
import sys

import pytest

from conftest import REPO, run_script

PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```", re.S | re.M)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FLAG = re.compile(r"--[a-z0-9][a-z0-9-]*")


@functools.cache
def accepted_flags(script: str) -> frozenset[str]:
    """The flags `script --help` lists (tyro and argparse both print every one)."""
    result = run_script(script, "--help", cwd=REPO, timeout=60)
    assert result.returncode == 0, f"{script} --help failed: {result.stderr[-1000:]}"
    return frozenset(FLAG.findall(result.stdout))


def commands(text: str):
    """The shell commands of the fenced bash blocks: continuation lines joined, comments dropped,
    `&&`, `;` and `|` chains split."""
    for lang, body in FENCE.findall(text):
        if lang.strip() not in ("bash", "sh", "shell"):
            continue
        for line in body.replace("\\\n", " ").splitlines():
            try:
                tokens = shlex.split(line, comments=True)
            except ValueError as error:
                yield None, f"unparsable command {line!r}: {error}"
                continue
            command: list[str] = []
            for token in [*tokens, "&&"]:
                if token in ("&&", ";", "|", "||"):
                    if command:
                        yield command, None
                    command = []
                else:
                    command.append(token)


def command_errors(text: str) -> list[str]:
    """Scripts that do not exist and flags they do not accept, one line each."""
    errors = []
    for command, problem in commands(text):
        if problem:
            errors.append(problem)
            continue
        starts = [i for i, t in enumerate(command[:-1]) if re.fullmatch(r"(\S*/)?python3?", t)]
        if not starts or not command[starts[0] + 1].endswith(".py"):
            continue  # not a script of ours (pytest, tensorboard, squeue, ...)
        script, args = command[starts[0] + 1], command[starts[0] + 2:]
        if not (REPO / script).is_file():
            errors.append(f"{' '.join(command)}: no such script {script}")
            continue
        for arg in args:
            name = arg.split("=", 1)[0]
            if name.startswith("--") and name not in accepted_flags(script):
                errors.append(f"{' '.join(command)}: {script} does not accept {name}")
    return errors


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(page) -> set[str]:
    text = FENCE.sub("", page.read_text())
    return {slug(h) for h in re.findall(r"^#+\s+(.*)$", text, re.M)}


def link_errors(page, text: str) -> list[str]:
    """Relative links and images of `text` (a page at `page`) that do not resolve."""
    prose = re.sub(r"`[^`\n]*`", "", FENCE.sub("", text))
    errors = []
    for target in LINK.findall(prose):
        if re.match(r"[a-z]+:", target):
            continue  # http(s), mailto: outside the repository
        path, _, anchor = target.partition("#")
        resolved = (page.parent / path).resolve() if path else page
        if not resolved.is_file():
            errors.append(f"{page.name}: link {target} does not resolve")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            errors.append(f"{page.name}: link {target} names no heading of {resolved.name}")
    return errors


# A link to lines of code quotes the start of its first line: [`def train_actor`](../happo.py#L284-L305)
CODE_LINK = re.compile(r"\[`([^`]+)`\]\(([^)#\s]+\.py)#L(\d+)(?:-L(\d+))?\)")


def code_link_errors(page, text: str) -> list[str]:
    """Links to lines of a file whose first line no longer holds the code the link quotes (the
    lines moved), or that point past the file's end."""
    errors = []
    for quoted, path, first, last in CODE_LINK.findall(FENCE.sub("", text)):
        source = (page.parent / path).resolve()
        lines = source.read_text().splitlines() if source.is_file() else []
        first, last = int(first), int(last or first)
        if not 1 <= first <= last <= len(lines):
            errors.append(f"{page.name}: {path}#L{first}-L{last} lies outside the file ({len(lines)} lines)")
        elif quoted not in lines[first - 1]:
            errors.append(f"{page.name}: {path}#L{first} should read `{quoted}` but reads "
                          f"`{lines[first - 1].strip()}`")
    return errors


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_to_code_lines_still_point_at_the_code_they_quote(page):
    assert code_link_errors(page, page.read_text()) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_commands_name_real_scripts_and_flags(page):
    assert command_errors(page.read_text()) == []


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_and_images_resolve(page):
    assert link_errors(page, page.read_text()) == []


ALGORITHM_PAGES = ["happo.md", "happo_rga.md", "mappo.md", "haa2c.md", "hatrpo.md", "hatd3.md"]
SECTIONS = ["Overview", "Usage", "Logged metrics", "Implementation details", "Where it differs from the authors' code",
            "Results"]  # CleanRL's order


@pytest.mark.parametrize("name", ALGORITHM_PAGES)
def test_every_algorithm_page_has_the_same_sections_in_order(name):
    text = FENCE.sub("", (REPO / "docs" / name).read_text())
    headings = [h for h in re.findall(r"^## (.*)$", text, re.M) if h in SECTIONS]
    assert headings == SECTIONS


def test_the_checks_catch_a_bad_flag_a_missing_script_and_a_broken_link(tmp_path):
    page = tmp_path / "page.md"
    text = ("# Title\n\n```bash\npython happo.py --env mpe_spread --no-such-flag 1   # comment --ignored\n"
            "python benchmarks/sweep.py --scripts happo.py \\\n    --seedz 1\npython nowhere.py --seed 1\n```\n\n"
            "[ok](#title) [bad anchor](#nothing) [gone](missing.md) ![image](gone.png) [web](https://example.org)\n")
    page.write_text(text)
    errors = command_errors(text)
    assert len(errors) == 3, errors
    assert "happo.py does not accept --no-such-flag" in errors[0]
    assert "sweep.py does not accept --seedz" in errors[1]
    assert "no such script nowhere.py" in errors[2]
    assert link_errors(page, text) == ["page.md: link #nothing names no heading of page.md",
                                       "page.md: link missing.md does not resolve",
                                       "page.md: link gone.png does not resolve"]
    line = next(n for n, code in enumerate((REPO / "happo.py").read_text().splitlines(), 1)
                if code.startswith("def train_actor"))
    docs = REPO / "docs" / "page.md"  # where the algorithm pages live: ../happo.py is the script
    assert code_link_errors(docs, f"[`def train_actor`](../happo.py#L{line}-L{line + 3})") == []
    assert code_link_errors(docs, f"[`def train_actor`](../happo.py#L{line + 1})") == [
        f"page.md: ../happo.py#L{line + 1} should read `def train_actor` but reads "
        f"`{(REPO / 'happo.py').read_text().splitlines()[line].strip()}`"]
    assert code_link_errors(docs, "[`x`](../happo.py#L99999)")[0].endswith("lies outside the file (" + str(
        len((REPO / "happo.py").read_text().splitlines())) + " lines)")


def test_readme_keeps_the_ci_test_command():
    command = "bash setup.sh && .venv/bin/python -m pytest -q tests"
    assert command in (REPO / "README.md").read_text()
    assert command in (REPO / ".ci" / "run").read_text()


# ---- tables generated from the CSVs (benchmarks/tables.py) ----

TABLES = str(REPO / "benchmarks" / "tables.py")


def check_tables(*pages) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, TABLES, "--check", *map(str, pages)], capture_output=True, text=True,
                          timeout=300)


def test_every_generated_table_is_what_the_csvs_give():
    result = check_tables()
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_table_edited_by_hand_fails_the_check(tmp_path):
    """docs/football.md with one figure of its generated table changed, as a hand would."""
    page = tmp_path / "football.md"
    text = (REPO / "docs" / "football.md").read_text()
    start = text.index("<!-- table: football grf_ca_easy -->")
    page.write_text(text[:start] + re.sub(r"\| (\d)\.(\d)", r"| 9.\2", text[start:], count=1))
    result = check_tables(page)
    assert result.returncode == 1 and f"{page}: the table 'football grf_ca_easy' differs from what results/ gives" \
        in result.stdout, result.stdout + result.stderr
