"""What a run writes to disk, made to survive a multi-day run: checkpoints written atomically that
never stop training when the disk is full, a TensorBoard writer that does not either, and the run
directory a resumed run goes on in.

A write that fails (no space left, no permission, a missing directory) costs that write only:
the previous checkpoint stays, training goes on, and the next interval tries again. Only the
last checkpoint of a run is worth stopping for: the scripts then end with one line and exit 1.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import threading
import time
from dataclasses import dataclass


def _reason(err: BaseException) -> str:
    """An error in a few words: the OS's message, else the first line of the exception's."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return (str(err).strip().splitlines() or [type(err).__name__])[0]


def _free_space(path: str) -> str:
    """The free space on the filesystem holding `path` (or its nearest existing parent)."""
    directory = os.path.dirname(os.path.abspath(path))
    while not os.path.isdir(directory):
        directory = os.path.dirname(directory)
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        return "unknown free space"
    for unit in ("B", "kB", "MB", "GB"):
        if free < 1024 or unit == "GB":
            return f"{free:.0f} {unit} free there" if unit == "B" else f"{free:.1f} {unit} free there"
        free /= 1024


@dataclass
class Saved:
    """The outcome of writing a checkpoint, worded for the run's output."""

    path: str
    error: str | None = None  # why it could not be written; None: it was

    @property
    def ok(self) -> bool:
        return self.error is None

    def __str__(self) -> str:
        if self.ok:
            return f"checkpoint saved to {self.path}"
        return f"could not write the checkpoint {self.path} ({self.error}); the previous one there is kept"


def write_checkpoint(state: dict, path: str) -> Saved:
    """torch.save `state` to `path` through a temporary file and a rename, so that a run killed
    mid-write, or a write that fails, keeps the previous checkpoint whole. A failure is returned,
    not raised: torch reports a full disk as `RuntimeError: ... unexpected pos`."""
    import torch

    tmp = path + ".tmp"
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        torch.save(state, tmp)
        os.replace(tmp, path)
        return Saved(path)
    except (OSError, RuntimeError) as err:
        with contextlib.suppress(OSError):
            os.remove(tmp)  # a partial file would only fill the disk further
        return Saved(path, f"{_reason(err)}; {_free_space(path)}")


def continued_run_dir(resume: str | None) -> str | None:
    """The run directory a resumed run goes on in: the checkpoint's own, when it lies in one
    (`runs/{run_name}/`), so that TensorBoard shows one curve per run; else None (a new one)."""
    if not resume:
        return None
    directory = os.path.dirname(os.path.abspath(resume))
    if os.path.basename(os.path.dirname(directory)) != "runs":
        return None
    return os.path.relpath(directory) if not os.path.isabs(resume) else directory


# TensorBoard's writer thread re-raises its error after storing it for the next write, where
# Writer reports it in one line: its traceback on stderr would say the same in forty.
_default_excepthook = threading.excepthook


def _quiet_tensorboard_thread(hook_args) -> None:
    if type(hook_args.thread).__name__ != "_AsyncWriterThread":
        _default_excepthook(hook_args)


threading.excepthook = _quiet_tensorboard_thread


class Writer:
    """torch's SummaryWriter for what the scripts log, except that a failing write (a full disk)
    never stops training: one warning line, then the writer is dropped and a new one (a new event
    file in the same directory, which TensorBoard reads as the same run) is tried every
    `retry` seconds; what is logged meanwhile is lost. `purge_step`: where a resumed run goes on
    in its own directory, TensorBoard hides what was logged there at and after this step."""

    def __init__(self, log_dir: str, purge_step: int | None = None, retry: float = 300.0):
        self.log_dir, self.purge_step, self.retry = log_dir, purge_step, retry
        self.writer, self.failed_at, self.outage = None, 0.0, False
        self._open()

    def _open(self) -> None:
        from torch.utils.tensorboard import SummaryWriter

        try:
            self.writer = SummaryWriter(self.log_dir, purge_step=self.purge_step)
        except Exception as err:  # noqa: BLE001 - whatever the filesystem says, training goes on
            self._fail(err)

    def _fail(self, err: BaseException) -> None:
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()
        self.writer, self.failed_at = None, time.monotonic()
        if not self.outage:  # one line per outage, not one per retry
            self.outage = True
            print(f"warning: TensorBoard logging to {self.log_dir} failed ({_reason(err)}; "
                  f"{_free_space(os.path.join(self.log_dir, 'events'))}); training goes on, logging is tried "
                  f"again every {self.retry:.0f} s", file=sys.stderr, flush=True)

    def _call(self, method: str, *args) -> None:
        if self.writer is None:
            if time.monotonic() - self.failed_at < self.retry:
                return
            self._open()
            if self.writer is None:
                return
        try:
            getattr(self.writer, method)(*args)
        except Exception as err:  # noqa: BLE001 - raised by the writer's thread or the file
            self._fail(err)
            return
        # the writer's thread flushes every 2 minutes and reports a failure at the next write:
        # well after that, the outage is over
        if self.outage and time.monotonic() - self.failed_at > 2 * self.retry:
            self.outage = False

    def add_scalar(self, tag: str, value, step: int) -> None:
        self._call("add_scalar", tag, value, step)

    def add_text(self, tag: str, text: str) -> None:
        self._call("add_text", tag, text)

    def close(self) -> None:
        if self.writer is not None:
            self._call("close")


def random_state(envs, eval_envs) -> dict:
    """Everything random a run carries from one iteration to the next besides its networks: torch's
    and numpy's generators and, where the simulator can hand it over (the batched one), each env's
    state (positions, step counts, its own generator). Saved with a checkpoint, it makes `--resume`
    go on exactly as the run would have (on the CPU); mpe2's and football's envs cannot hand over
    their episodes, and a run resumed on them starts new ones."""
    import numpy as np
    import torch

    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss,
                                                      cached],
            "envs": [e.get_state() if hasattr(e, "get_state") else None for e in (envs, eval_envs)]}


def restore_random_state(state: dict | None, envs, eval_envs):
    """Puts back what `random_state` saved (nothing for a checkpoint without it); returns the
    training envs' (obs, state) when their episodes were restored, else None (reset them)."""
    import numpy as np
    import torch

    if state is None:
        return None
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    for env, saved in zip((envs, eval_envs), state["envs"]):
        if saved is not None:
            env.set_state(saved)
    return envs.observe() if state["envs"][0] is not None else None
