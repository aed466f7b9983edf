"""Do the reproduction tests catch a broken update? Each mutation below changes one line so that an
algorithm is no longer the one its paper defines (a clip, the HAPPO factor, GAE, a trust region, a
target network, ...). Each is applied to a throwaway copy of the repository (its tracked files, as
they are in the working tree), and the reproduction tests of the mutated script run there, as a
fork's CI would run them: its golden traces, then its learning floor (`pytest -x`, so the first
failure ends the run). Prints the table of docs/tests.md; exits 1 if any mutation went uncaught.

    python benchmarks/mutations.py                  # all (about 10 minutes on 2 cores)
    python benchmarks/mutations.py --scripts hatd3.py
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ON_POLICY = ["happo.py", "happo_rga.py", "mappo.py", "haa2c.py", "hatrpo.py"]


@dataclass(frozen=True)
class Mutation:
    script: str  # whose reproduction tests must catch it
    what: str
    line: str  # as written in `path` (exactly once)
    mutated: str
    path: str = ""  # the file changed; default: the script

    @property
    def file(self) -> str:
        return self.path or self.script


# The same broken lines in each script that has them (the scripts are self-contained copies).
PPO_CLIP = ("PPO clip removed: surrogate r A only",
            "surr2 = ratio.clamp(1 - args.clip_coef, 1 + args.clip_coef) * advantages[idx]",
            "surr2 = ratio * advantages[idx]")
VALUE_CLIP = ("value clip removed",
              "values_clipped = old_values[idx] + (values - old_values[idx]).clamp(-args.clip_coef, args.clip_coef)",
              "values_clipped = values")
ADVANTAGE_NORM = ("advantages not normalised",
                  "b_advantages = (b_advantages - b_advantages.mean()) / (b_advantages.std(correction=0) + 1e-5)",
                  "b_advantages = b_advantages")
GAE_LAMBDA = ("GAE without lambda (lambda = 1)",
              "gae = (delta + gamma * gae_lambda * not_done * gae) * (1.0 - truncated[t])",
              "gae = (delta + gamma * not_done * gae) * (1.0 - truncated[t])")
ENTROPY = ("entropy bonus of the wrong sign",
           "loss = policy_loss - args.ent_coef * entropy", "loss = policy_loss + args.ent_coef * entropy")
HAPPO_FACTOR = ("HAPPO factor M dropped (eq. 11): each agent as in MAPPO",
                "policy_loss = -(factor[idx] * torch.min(surr1, surr2)).mean()",
                "policy_loss = -torch.min(surr1, surr2).mean()")

MUTATIONS = [
    *[Mutation("happo.py", *m) for m in (PPO_CLIP, HAPPO_FACTOR, VALUE_CLIP, ADVANTAGE_NORM, GAE_LAMBDA, ENTROPY)],
    *[Mutation("happo_rga.py", *m) for m in (PPO_CLIP, HAPPO_FACTOR, VALUE_CLIP)],
    Mutation("happo_rga.py", "RGA spatial mask removed (eq. 7)", "x = x * self.spatial(x)  # eq. 7", "x = x",
             "common/rga.py"),
    Mutation("happo_rga.py", "RGA channel mask removed (eq. 8)",
             "channel_mask = self.channel(x) if self.channel is not None else 1.0", "channel_mask = 1.0",
             "common/rga.py"),
    *[Mutation("mappo.py", *m) for m in (PPO_CLIP, VALUE_CLIP, ADVANTAGE_NORM, GAE_LAMBDA, ENTROPY)],
    Mutation("haa2c.py", "HAPPO factor M dropped: each agent as in MAA2C",
             "policy_loss = -(factor[idx] * ratio * advantages[idx]).mean()",
             "policy_loss = -(ratio * advantages[idx]).mean()"),
    *[Mutation("haa2c.py", *m) for m in (VALUE_CLIP, ADVANTAGE_NORM, GAE_LAMBDA, ENTROPY)],
    Mutation("hatrpo.py", "HAPPO factor M dropped from the surrogate",
             "return (factor * torch.exp(logp - old_logp) * advantages).mean(), entropy.mean()",
             "return (torch.exp(logp - old_logp) * advantages).mean(), entropy.mean()"),
    Mutation("hatrpo.py", "step not scaled to the trust region (eq. 8)",
             "full_step = torch.sqrt(args.kl_threshold / shs) * step_dir", "full_step = step_dir"),
    Mutation("hatrpo.py", "line search ignores the KL constraint",
             "if kl < args.kl_threshold and improve > 0 and improve / expected_improve > args.accept_ratio:",
             "if improve > 0 and improve / expected_improve > args.accept_ratio:"),
    Mutation("hatrpo.py", "line search ignores the improvement",
             "if kl < args.kl_threshold and improve > 0 and improve / expected_improve > args.accept_ratio:",
             "if kl < args.kl_threshold:"),
    Mutation("hatrpo.py", "a rejected step is kept", "set_flat_params(actor, old_params)", "pass"),
    Mutation("hatrpo.py", *VALUE_CLIP),
    Mutation("hatd3.py", "target-noise clip removed", "noise = noise.clamp(-clip * self.scale, clip * self.scale)",
             "noise = noise"),
    Mutation("hatd3.py", "no target policy smoothing",
             "next_actions = torch.cat([actor.perturb(actor(o), args.policy_noise, args.noise_clip)",
             "next_actions = torch.cat([actor(o)"),
    Mutation("hatd3.py", "one target critic, not the smaller of two",
             'next_q = torch.min(*[qf(batch["next_state"], next_actions) for qf in qf_targets])',
             'next_q = qf_targets[0](batch["next_state"], next_actions)'),
    Mutation("hatd3.py", "online critics as their own targets",
             'next_q = torch.min(*[qf(batch["next_state"], next_actions) for qf in qf_targets])',
             'next_q = torch.min(*[qf(batch["next_state"], next_actions) for qf in qfs])'),
    Mutation("hatd3.py", "actors updated at every critic step (no delay)",
             "if num_updates % args.policy_frequency == 0:", "if True:"),
    Mutation("hatd3.py", "targets copied instead of Polyak-averaged", "tp.lerp_(p, polyak)", "tp.copy_(p)"),
]


def tests_of(script: str) -> list[str]:
    """The reproduction tests of `script` (tests/test_reproduction.py), cheapest first."""
    name = script.removesuffix(".py")
    goldens = [name] + ([f"{name}_continuous"] if script in ON_POLICY else [])
    return ([f"tests/test_reproduction.py::test_golden_trace[{g}]" for g in goldens]
            + [f"tests/test_reproduction.py::test_learning_floor[{script}]"])


def copy_repository(to: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split("\0")
    for name in filter(None, files):
        if (REPO / name).is_file():  # a tracked file deleted in the working tree is left out
            (to / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, to / name)


def mutate(copy: Path, m: Mutation) -> None:
    path = copy / m.file
    text = path.read_text()
    if text.count(m.line) != 1:
        sys.exit(f"error: the mutation '{m.what}' expects `{m.line}` once in {m.file}, found it "
                 f"{text.count(m.line)} times: update MUTATIONS in {Path(__file__).name}")
    path.write_text(text.replace(m.line, m.mutated))


def run(m: Mutation) -> tuple[str, float]:
    """The first of the script's reproduction tests that fails on the mutated copy ('' if none)."""
    with tempfile.TemporaryDirectory(prefix="mutation-") as tmp:
        copy = Path(tmp)
        copy_repository(copy)
        mutate(copy, m)
        start = time.time()
        result = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                                 *tests_of(m.script)], cwd=copy, capture_output=True, text=True)
        seconds = time.time() - start
    failed = re.search(r"^FAILED tests/test_reproduction.py::(\S+)", result.stdout, re.MULTILINE)
    if result.returncode not in (0, 1) or (result.returncode == 1) != bool(failed):
        sys.exit(f"error: pytest ended with status {result.returncode} on '{m.what}':\n{result.stdout[-3000:]}")
    return (failed.group(1) if failed else ""), seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scripts", nargs="+", default=None, help="only the mutations of these scripts")
    opts = parser.parse_args()
    chosen = [m for m in MUTATIONS if opts.scripts is None or m.script in opts.scripts]
    print("| script | mutation | caught by | seconds |\n|-|-|-|-|", flush=True)
    missed = []
    for m in chosen:
        caught, seconds = run(m)
        where = "" if m.file == m.script else f" ({m.file})"
        print(f"| {m.script} | {m.what}{where} | {caught or '**not caught**'} | {seconds:.0f} |", flush=True)
        if not caught:
            missed.append(m)
    print(f"\n{len(chosen) - len(missed)} of {len(chosen)} mutations caught")
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
