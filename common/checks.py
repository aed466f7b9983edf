"""The valid range of every numeric flag, and the checks of `--cuda` and of `--resume` files.

`RANGES` names the range of each numeric field of the scripts' `Args` (a field means the same in
every script that has it). `check_ranges` runs right after the command line is parsed, before
torch or any env loads, and refuses a numeric field that has no entry here: a new flag cannot
start runs unchecked (tests/test_robust.py walks every field of every script).
"""

from __future__ import annotations

import dataclasses
import math
import os
import zipfile
from dataclasses import dataclass

from common.config import fail


@dataclass(frozen=True)
class Range:
    """Finite numbers from `low` to `high`; an open end excludes its bound."""

    low: float = -math.inf
    high: float = math.inf
    open_low: bool = False
    open_high: bool = False

    def __contains__(self, x) -> bool:
        above = x > self.low if self.open_low else x >= self.low
        below = x < self.high if self.open_high else x <= self.high
        return math.isfinite(x) and above and below  # NaN and inf are never valid

    def __str__(self) -> str:
        low, high = (str(int(x)) if float(x).is_integer() else f"{x:g}" for x in (self.low, self.high))
        if self.high == math.inf:
            return f"{'>' if self.open_low else '>='} {low}"
        return f"in {'(' if self.open_low else '['}{low}, {high}{')' if self.open_high else ']'}"


COUNT = Range(1)  # sizes, counts, intervals that must happen
OPTIONAL = Range(0)  # counts where 0 means "none" or "automatic"
POSITIVE = Range(0, open_low=True)
NON_NEGATIVE = Range(0)
FRACTION = Range(0, 1)

RANGES: dict[str, Range] = {
    # general
    "seed": Range(0, 2**31 - 1),  # numpy seeds are 32-bit unsigned; env k adds k (evaluation 100_000 + k)
    "checkpoint_interval": OPTIONAL,
    "stop_at": OPTIONAL,  # 0: train to --total-timesteps
    "total_timesteps": COUNT,
    "num_envs": COUNT,
    "num_workers": OPTIONAL,
    "worker_timeout": POSITIVE,
    "torch_threads": OPTIONAL,
    "eval_interval": OPTIONAL,
    "eval_episodes": COUNT,
    "num_eval_envs": COUNT,
    "log_interval": COUNT,
    "hidden_sizes": COUNT,  # each width; the tuple must not be empty
    # on-policy
    "num_steps": COUNT,
    "learning_rate": POSITIVE,
    "critic_learning_rate": POSITIVE,
    "update_epochs": COUNT,
    "num_minibatches": COUNT,
    "gamma": FRACTION,
    "gae_lambda": FRACTION,
    "clip_coef": POSITIVE,
    "ent_coef": NON_NEGATIVE,
    "vf_coef": POSITIVE,  # 0 would leave the critic untrained
    "max_grad_norm": POSITIVE,
    "huber_delta": POSITIVE,
    # HAPPO-RGA
    "rga_channels": COUNT,
    "rga_ratio": COUNT,
    # HATRPO
    "kl_threshold": POSITIVE,
    "cg_iters": COUNT,
    "cg_damping": NON_NEGATIVE,
    "line_search_steps": COUNT,
    "backtrack_coef": Range(0, 1, open_low=True, open_high=True),  # each try must shrink the step
    "accept_ratio": FRACTION,
    # HATD3
    "train_interval": COUNT,
    "update_per_train": POSITIVE,
    "warmup_steps": NON_NEGATIVE,
    "buffer_size": COUNT,
    "batch_size": COUNT,
    "polyak": Range(0, 1, open_low=True),  # 0: the targets would never move
    "exploration_noise": NON_NEGATIVE,
    "policy_noise": NON_NEGATIVE,
    "noise_clip": NON_NEGATIVE,
    "policy_frequency": COUNT,
}


def is_numeric(field: dataclasses.Field) -> bool:
    """int, float or a tuple of them (bool is an int in Python, but a switch here)."""
    kind = getattr(field.type, "__origin__", field.type)
    return kind in (int, float, tuple)


def flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def check_value(flag_name: str, value, rule: Range) -> None:
    if value not in rule:
        fail(f"{flag_name} {value} is out of range; it must be {rule}")


def check_ranges(args) -> None:
    """One line and exit 2 for the first numeric field of `args` outside its range."""
    for field in dataclasses.fields(args):
        if not is_numeric(field):
            continue
        if field.name not in RANGES:  # a programming error, found by any run or test
            raise KeyError(f"{type(args).__name__}.{field.name} has no range in common/checks.py RANGES")
        rule, value = RANGES[field.name], getattr(args, field.name)
        if isinstance(value, tuple):
            if not value:
                fail(f"{flag(field.name)} needs at least one value, each {rule}")
            if bad := [v for v in value if v not in rule]:
                fail(f"{flag(field.name)} {' '.join(map(str, value))}: {bad[0]} is out of range; each must be {rule}")
        else:
            check_value(flag(field.name), value, rule)


def check_cuda() -> None:
    """`--cuda` where no GPU works: one line, exit 2. No fallback to the CPU: a run meant for a
    GPU could take many times longer there, unnoticed. Imports torch: only for `--cuda`."""
    import torch

    try:
        torch.zeros(1, device="cuda")  # is_available() can be True for a GPU that still fails
    except Exception as err:  # noqa: BLE001 - no driver, not compiled with CUDA, busy or broken GPU
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0]
        fail(f"--cuda: no usable GPU ({reason}); leave out --cuda to train on the CPU")


def check_checkpoint_file(path: str, what: str = "--resume") -> None:
    """Before torch loads: the file exists and is a zip archive, the format of `torch.save`."""
    if not os.path.isfile(path):
        fail(f"{what} {path}: no such file")
    if not zipfile.is_zipfile(path):  # also what an unreadable file gives
        fail(f"{what} {path} is not a checkpoint (not a file torch.save wrote)")


def read_checkpoint(path: str, algo: str | None, env_id: str | None, what: str = "--resume",
                    ckpt: dict | None = None) -> dict:
    """The checkpoint at `path` (or `ckpt`, already read from it), which must be one of script
    `algo` on `env_id` (None: any of these scripts' checkpoints); else one line, exit 2."""
    import torch

    try:
        if ckpt is None:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - a damaged or foreign file
        fail(f"{what} {path} is not a readable checkpoint ({type(err).__name__}); give a "
             f"`.cleanrl_model` file that --save-model or --checkpoint-interval wrote")
    if not isinstance(ckpt, dict) or not {"algo", "env", "args", "global_step", "iteration"} <= set(ckpt):
        fail(f"{what} {path} is not a checkpoint of these scripts (its keys are not theirs)")
    if algo is not None and (ckpt["algo"] != algo or ckpt["env"] != env_id):
        fail(f"{what} {path} is a {ckpt['algo']} checkpoint for {ckpt['env']}, not {algo} for {env_id}")
    return ckpt


def load_states(path: str, pairs, what: str = "--resume") -> None:
    """`module.load_state_dict(state)` for each (module, state; an optimizer keeps the learning
    rate it was made with, so that a resumed run can change it); a checkpoint of other shapes
    (another --hidden-sizes, say) stops with one line and exit 2."""
    import torch

    try:
        for module, state in pairs:
            if not isinstance(module, torch.optim.Optimizer):
                module.load_state_dict(state)
                continue
            rates = [group["lr"] for group in module.param_groups]  # the run's --learning-rate, not the checkpoint's
            module.load_state_dict(state)
            for group, lr in zip(module.param_groups, rates):
                group["lr"] = lr
    except (RuntimeError, ValueError, KeyError) as err:
        detail = " ".join(line.strip() for line in str(err).splitlines())[:300] or type(err).__name__
        fail(f"{what} {path} does not fit this run's networks (saved with other --hidden-sizes or "
             f"architecture flags?): {detail}")
