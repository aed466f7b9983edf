"""Every script end to end, as a user runs it: smoke runs, determinism, bad input, checkpoints."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from common.config import MPE_BACKEND, PRESETS, parse_args
from common.envs import GRF_ENVS, MPE_ENVS, check_memory
from conftest import (GRF_TINY, ON_POLICY, REPO, SCRIPTS, gone, read_scalars, run_dir, run_script, start_script,
                      tiny, video_frames, wait_until, workers_of)
# Football's smoke runs take 10-20 s each: every id for HAPPO and HAPPO-RGA, one for the others
FOOTBALL_RUNS = [(script, env_id) for script in ON_POLICY for env_id in GRF_ENVS
                 if script in ("happo.py", "happo_rga.py") or env_id == "grf_3v1"]
# What each script logs besides charts/episodic_return, charts/SPS and eval/episodic_return
LOSS_TAGS = {script: ["losses/value_loss", "losses/policy_loss", "losses/entropy", "losses/approx_kl"]
             for script in ON_POLICY}
LOSS_TAGS["hatd3.py"] = ["losses/q_loss", "losses/actor_loss"]


def runs_on(script: str, env_id: str) -> bool:
    """HATD3 needs continuous actions; the on-policy scripts run every id."""
    return script != "hatd3.py" or MPE_ENVS.get(env_id, (None, False))[1]


def mpe_id(script: str, env_id: str) -> str:
    """`env_id`, or its continuous version where `script` needs one."""
    return env_id if runs_on(script, env_id) else f"{env_id}_continuous"


# every env id with its default backend, and mpe2 itself for the ids that default to batched
ENV_BACKENDS = [*MPE_BACKEND.items(), *[(e, "pettingzoo") for e, b in MPE_BACKEND.items() if b == "batched"]]


@pytest.mark.parametrize("script, env_id, backend", [(s, e, b) for s in SCRIPTS for e, b in ENV_BACKENDS
                                                     if runs_on(s, e)])
def test_smoke(script, env_id, backend, tiny_run, tmp_path):
    result = tiny_run(script, "--env", env_id, "--env-backend", backend)
    assert "iter 2/2 step 100" in result.stdout
    scalars = read_scalars(run_dir(tmp_path))
    for tag in ["charts/episodic_return", "charts/SPS", *LOSS_TAGS[script], "eval/episodic_return"]:
        assert tag in scalars, tag
    assert len(scalars["eval/episodic_return"]) == 2


@pytest.mark.parametrize("script, env_id", FOOTBALL_RUNS)
def test_smoke_football(script, env_id, tmp_path):
    pytest.importorskip("gfootball", reason="Google Research Football is installed by `bash setup.sh`")
    result = run_script(script, "--env", env_id, *GRF_TINY, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "iter 1/1 step 802" in result.stdout and "score_rate" in result.stdout
    scalars = read_scalars(run_dir(tmp_path))
    for tag in ["charts/episodic_return", "charts/score_rate", "charts/SPS", "losses/value_loss",
                "losses/policy_loss", "eval/episodic_return", "eval/score_rate"]:
        assert tag in scalars, tag
    assert scalars["eval/score_rate"][0][1] in (0.0, 0.5, 1.0)  # 2 episodes


def start_football(script, tmp_path, *args):
    """6 training + 6 evaluation envs in 2 workers; its own process group, as a terminal's job."""
    return start_script(script, "--env", "grf_3v1", *GRF_TINY, "--num-envs", "6", "--num-workers", "2",
                        "--num-eval-envs", "6", "--num-steps", "200", "--total-timesteps", "1200", *args, cwd=tmp_path,
                        stderr=subprocess.PIPE, start_new_session=True)


@pytest.mark.parametrize("script", ["happo.py"])  # the env layer: one script suffices
def test_football_runs_in_exactly_num_workers_processes_and_leaves_none(script, tmp_path):
    pytest.importorskip("gfootball", reason="Google Research Football is installed by `bash setup.sh`")
    proc, seen = start_football(script, tmp_path), {}
    while proc.poll() is None:
        seen.update({p.pid: p for p in workers_of(proc)})
        time.sleep(0.1)
    out, err = proc.communicate()
    assert proc.returncode == 0, out[-2000:] + err[-3000:]
    assert "starting 6 + 6 football engines (train + eval) in 2 worker processes" in out
    assert len(seen) == 2 and gone(list(seen.values()), timeout=0)


@pytest.mark.parametrize("script", ["happo.py"])  # the env layer: one script suffices
@pytest.mark.parametrize("signum, to_group", [(signal.SIGINT, True), (signal.SIGTERM, False)])
def test_signal_during_start_up_ends_with_one_line_and_no_worker(script, signum, to_group, tmp_path):
    """Ctrl-C (SIGINT to the whole process group, workers included) or a scheduler's SIGTERM to
    the trainer alone, while the engines start: exit 130, one line, no traceback, no worker."""
    pytest.importorskip("gfootball", reason="Google Research Football is installed by `bash setup.sh`")
    proc = start_football(script, tmp_path)
    try:
        for line in proc.stdout:
            if line.startswith("starting"):
                break
        workers = wait_until(lambda: len(w := workers_of(proc)) == 2 and w, 30, "both workers", every=0.02)
        os.killpg(proc.pid, signum) if to_group else proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, out + err
    assert "ready in" not in out, "the signal came after start-up: nothing was tested"
    assert err.strip() == f"{signal.Signals(signum).name} during start-up: stopped before training", err
    assert gone(workers)


def test_memory_check_names_the_flags_that_fit():
    """The grf_ca_hard preset (50 + 50 engines, 2 workers, 1000 steps) against simulated
    available memory: fits in 24 GB; in 5 GB fewer evaluation engines fit; in 2.5 GB fewer
    training engines with longer rollouts, the same batch. Each suggestion itself fits."""
    preset = dict(env_id="grf_ca_hard", num_workers=2)
    check_memory(num_envs=50, num_eval_envs=50, num_steps=1000, available=24_000, **preset)
    with pytest.raises(ValueError, match=r"what fits: --num-eval-envs (\d+) \(the same training\)") as small:
        check_memory(num_envs=50, num_eval_envs=50, num_steps=1000, available=5_000, **preset)
    v = int(small.value.args[0].split("--num-eval-envs ")[1].split()[0])
    check_memory(num_envs=50, num_eval_envs=v, num_steps=1000, available=5_000, **preset)
    with pytest.raises(ValueError, match="the same batch of 50000") as tiny:
        check_memory(num_envs=50, num_eval_envs=50, num_steps=1000, available=2_500, **preset)
    e, t, v = (int(tiny.value.args[0].split(flag)[1].split()[0]) for flag in ("--num-envs ", "--num-steps ", "--num-eval-envs "))
    assert e < 50 and e * t == 50_000
    check_memory(num_envs=e, num_eval_envs=v, num_steps=t, available=2_500, **preset)


def test_a_run_shorter_than_one_evaluation_interval_evaluates_little():
    """The football preset evaluates 100 episodes on 50 engines; a 2-env run of one iteration
    evaluates at most 2 episodes on 2 envs, unless the command line asks for more."""
    import happo

    short = ["--env", "grf_ca_hard", "--num-envs", "2", "--num-steps", "200", "--total-timesteps", "400"]
    args = parse_args(happo.Args, "happo", short)
    assert (args.num_eval_envs, args.eval_episodes) == (2, 2)
    args = parse_args(happo.Args, "happo", [*short, "--eval-episodes", "7"])
    assert (args.num_eval_envs, args.eval_episodes) == (2, 7)
    args = parse_args(happo.Args, "happo", ["--env", "grf_ca_hard"])  # the whole preset
    assert (args.num_eval_envs, args.eval_episodes) == (50, 100)


# 3 iterations of 4 envs x 50 steps (HATD3: the first the warm-up)
SAME_SEED_BUDGET = {script: ["--num-steps", "50"] for script in ON_POLICY}
SAME_SEED_BUDGET["hatd3.py"] = ["--train-interval", "50", "--warmup-steps", "200", "--batch-size", "64"]


@pytest.mark.parametrize("script, env_id", [(s, e) for s in SCRIPTS for e, b in MPE_BACKEND.items()
                                            if b == "batched" and runs_on(s, e)])
def test_same_seed_same_losses_on_both_backends(script, env_id, tmp_path):
    """One seed: the batched backend twice, and mpe2 in 2 worker processes, log identical
    losses and returns (the batched simulator is the same MDP, bit for bit). One torch thread
    for all: float sums, and so the last bits of a loss, depend on the thread count."""
    logs = []
    for name, backend in [("a", "batched"), ("b", "batched"), ("c", "pettingzoo")]:
        (tmp_path / name).mkdir()
        result = run_script(script, "--env", env_id, "--env-backend", backend, "--num-envs", "4",
                            *SAME_SEED_BUDGET[script], "--total-timesteps", "600", "--num-workers", "2",
                            "--eval-interval", "0", "--seed", "3", "--torch-threads", "1", cwd=tmp_path / name)
        assert result.returncode == 0, result.stderr[-3000:]
        logs.append(read_scalars(run_dir(tmp_path / name)))
    for tag in [*LOSS_TAGS[script][:3], "charts/episodic_return"]:
        assert len(logs[0][tag]) >= 2
        assert logs[0][tag] == logs[1][tag] == logs[2][tag], tag


BAD_INPUT = [  # (the scripts it applies to, arguments, what the error says)
    (SCRIPTS, ["--env", "mpe_nope"], "valid ids: mpe_spread, "),
    (ON_POLICY, ["--num-envs", "3", "--num-steps", "5", "--num-minibatches", "2"], "--num-minibatches 2 does not divide"),
    (SCRIPTS, ["--num-envs", "0"], "--num-envs 0 is out of range; it must be >= 1"),
    (["happo.py"], ["--learning-rate", "-1"], "--learning-rate -1.0 is out of range; it must be > 0"),
    (["hatd3.py"], ["--gamma", "2"], "--gamma 2.0 is out of range; it must be in [0, 1]"),
    (["mappo.py"], ["--clip-coef", "-1"], "--clip-coef -1.0 is out of range; it must be > 0"),
    (["hatrpo.py"], ["--hidden-sizes"], "--hidden-sizes needs at least one value, each >= 1"),
    (ON_POLICY, ["--total-timesteps", "1000"], "less than one iteration's batch of 4000"),
    (["hatd3.py"], ["--total-timesteps", "999"], "less than one iteration's 1000 steps (num-envs x train-interval)"),
    (SCRIPTS, ["--resume", "missing.cleanrl_model"], "no such file"),
    (ON_POLICY, ["--env", "mpe_reference", "--env-backend", "batched"], "use --env-backend pettingzoo for mpe_reference"),
    (["hatd3.py"], ["--env", "mpe_reference_continuous", "--env-backend", "batched"],
     "use --env-backend pettingzoo for mpe_reference_continuous"),
    (SCRIPTS, ["--env-backend", "jax"], "valid backends: batched, pettingzoo, gfootball"),
    (ON_POLICY, ["--env", "grf_ps", "--env-backend", "pettingzoo"], "grf_ps runs on --env-backend gfootball only"),
    (ON_POLICY, ["--env", "grf_ps", "--num-envs", "3", "--num-steps", "201"], "--num-minibatches 2 does not divide the batch of 603"),
    (ON_POLICY, ["--env", "grf_ca_hard", "--num-envs", "1000", "--num-eval-envs", "1000"], "+ 1000 football engines in 2 workers need about"),
    *[(["hatd3.py"], ["--env", env_id], f"HATD3 needs continuous actions; valid ids: {', '.join(PRESETS['hatd3'])}")
      for env_id in ("mpe_spread", "grf_ca_hard")],
    (["hatd3.py"], ["--buffer-size", "10"], "--buffer-size 10 cannot hold one step of --num-envs 20"),
]


@pytest.mark.parametrize("script, args, message", [(script, args, message) for scripts, args, message in BAD_INPUT
                                                   for script in scripts])
def test_bad_input_fails_fast_with_one_line(script, args, message, tmp_path):
    """Checked before torch, the environments or any worker load: exit 2 and one line."""
    probe = ("import os, runpy, sys; sys.argv = sys.argv[1:]; sys.path.insert(0, os.path.dirname(sys.argv[0]))\n"
             "try: runpy.run_path(sys.argv[0], run_name='__main__')\n"
             "except SystemExit as e: print(*[m in sys.modules for m in ('torch', 'mpe2', 'gfootball')], e.code)")
    result = subprocess.run([sys.executable, "-c", probe, str(REPO / script), *args], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False False False 2", result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


CHECKPOINT_KEYS = {script: {"actors", "critic", "value_norm", "critic_optimizer", "args"} for script in ON_POLICY}
CHECKPOINT_KEYS["hatd3.py"] = {"actors", "target_actors", "critics", "target_critics", "actor_optimizers",
                               "critic_optimizer", "num_updates", "args"}


@pytest.mark.parametrize("script", SCRIPTS)
def test_save_resume_and_wrong_env(script, tiny_run, checkpoint_of, tmp_path):
    ckpt = checkpoint_of(script)  # a TINY run's, saved at its end
    state = torch.load(ckpt, weights_only=True)
    assert state["global_step"] == 100 and state["env"] == mpe_id(script, "mpe_spread")
    assert CHECKPOINT_KEYS[script] <= set(state)
    assert ("actor_optimizers" in state) == (script != "hatrpo.py")  # HATRPO's actors have no optimizer

    (tmp_path / "resumed").mkdir()
    result = tiny_run(script, "--resume", str(ckpt), "--total-timesteps", "200", cwd=tmp_path / "resumed")
    assert "resumed from" in result.stdout and "at step 100" in result.stdout
    assert "iter 4/4 step 200" in result.stdout and "iter 1/" not in result.stdout

    wrong = run_script(script, *tiny(script), "--env", mpe_id(script, "mpe_reference"), "--resume", str(ckpt),
                       cwd=tmp_path)
    assert wrong.returncode == 2 and f"checkpoint for {mpe_id(script, 'mpe_spread')}," in wrong.stderr


def tensors(checkpoint) -> dict:
    """Every tensor of a checkpoint (networks, optimisers, generators, envs), by its path in it."""
    def walk(x, path):
        if isinstance(x, torch.Tensor):
            yield path, x
        elif isinstance(x, dict):
            for k, v in x.items():
                yield from walk(v, f"{path}/{k}")
        elif isinstance(x, (list, tuple)):
            for k, v in enumerate(x):
                yield from walk(v, f"{path}/{k}")
    return dict(walk(torch.load(checkpoint, weights_only=True), ""))


@pytest.mark.parametrize("script", SCRIPTS)
def test_stop_at_ends_early_on_the_whole_runs_schedule_and_resume_continues_the_run(script, tiny_run, tmp_path):
    """--stop-at 60 of 200 steps (TINY batch: 50): iterations 1-2 of 4 and a checkpoint; then
    `--resume` with no other flag runs 3-4 with the run's own flags, in its own run directory, so
    that TensorBoard shows one curve. On-policy, the result is that of the same 4 iterations
    straight, bit for bit (losses, returns, parameters, optimiser states: the checkpoint carries
    the generators and the batched envs' episodes). HATD3's checkpoint leaves out the replay buffer,
    which a resumed run refills: what it keeps (networks, targets, optimisers, the update count)
    comes back unchanged."""
    flags = ["--total-timesteps", "200", "--torch-threads", "1", *(["--anneal-lr"] if script in ON_POLICY else [])]
    first = tiny_run(script, *flags, "--stop-at", "60")
    assert "iter 2/4 step 100" in first.stdout and "iter 3/" not in first.stdout
    assert "stopped at step 100 (--stop-at 60)" in first.stdout
    (ckpt,) = run_dir(tmp_path).glob("*.cleanrl_model")
    state = torch.load(ckpt, weights_only=True)
    assert (state["iteration"], state["global_step"]) == (2, 100)
    if script == "hatd3.py":  # resumed and saved again with no iteration between: what the file keeps
        (tmp_path / "kept").mkdir()  # a copy, so that the run's own checkpoint stays as it is
        copy = shutil.copy(ckpt, tmp_path / "kept")
        kept = run_script(script, "--resume", copy, "--stop-at", "100", cwd=tmp_path / "kept")
        assert kept.returncode == 0 and "the replay buffer starts empty" in kept.stdout, kept.stderr[-3000:]
        (again,) = run_dir(tmp_path / "kept").glob("*.cleanrl_model")
        before, after = tensors(ckpt), tensors(again)
        assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
        assert torch.load(again, weights_only=True)["num_updates"] == state["num_updates"] > 0
    second = run_script(script, "--resume", str(ckpt.relative_to(tmp_path)), cwd=tmp_path)
    assert second.returncode == 0, second.stdout[-2000:] + second.stderr[-3000:]
    assert "iter 4/4 step 200" in second.stdout and "stopped at" not in second.stdout
    assert "resume: --" not in second.stdout  # nothing differs from the checkpoint's flags
    scalars = read_scalars(run_dir(tmp_path))  # the only run directory: both processes' event files
    assert len(list(run_dir(tmp_path).glob("events*"))) == 2
    assert [step for step, _ in scalars["charts/SPS"]] == [50, 100, 150, 200]
    if script in ON_POLICY:
        lr = PRESETS[script.removesuffix(".py")]["mpe_spread"].get("learning_rate", 5e-4)
        assert [value for _, value in scalars["charts/learning_rate"]] == pytest.approx(
            [lr, 0.75 * lr, 0.5 * lr, 0.25 * lr])
        (tmp_path / "straight").mkdir()
        tiny_run(script, *flags, cwd=tmp_path / "straight")
        straight = read_scalars(run_dir(tmp_path / "straight"))
        assert straight.keys() == scalars.keys()
        assert {tag: v for tag, v in straight.items() if tag != "charts/SPS"} == {
            tag: v for tag, v in scalars.items() if tag != "charts/SPS"}
        (end,) = run_dir(tmp_path / "straight").glob("*.cleanrl_model")
        resumed, uninterrupted = tensors(ckpt), tensors(end)
        assert resumed.keys() == uninterrupted.keys()
        assert [k for k in resumed if not torch.equal(resumed[k], uninterrupted[k])] == []


def test_resume_applies_and_reports_a_changed_flag_and_refuses_a_changed_env(checkpoint_of, tmp_path):
    """The checkpoint's flags are the defaults of a resumed run: one the command line changes is
    applied and named in one line; the env cannot change (nor the network shapes: test_robust.py)."""
    ckpt = checkpoint_of("happo.py")
    result = run_script("happo.py", "--resume", str(ckpt), "--total-timesteps", "200", "--learning-rate", "0.001",
                        cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    changed = [line for line in result.stdout.splitlines() if line.startswith("resume: ")]
    assert changed == ["resume: --total-timesteps 200 (the checkpoint's: 100)",
                       "resume: --learning-rate 0.001 (the checkpoint's: 0.0005)"]
    assert "iter 4/4 step 200" in result.stdout  # the TINY run's 2 envs x 25 steps, from the checkpoint
    rates = read_scalars(run_dir(tmp_path))["charts/learning_rate"]
    assert [(step, value) for step, value in rates] == [(150, pytest.approx(0.001)), (200, pytest.approx(0.001))]
    refused = run_script("happo.py", "--resume", str(ckpt), "--env", "mpe_reference", cwd=tmp_path)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "is a happo checkpoint for mpe_spread, not happo for mpe_reference" in refused.stderr, refused.stderr


# A diverged critic, resumed: NaN advantages (on-policy: the resumed run's first update); NaN
# Q-values (HATD3: after the resumed run's warm-up)
NAN_LOSS = {script: "iteration 3: .*policy_loss is nan" for script in ON_POLICY}
NAN_LOSS["hatd3.py"] = "iteration 4: q_loss is nan"


@pytest.mark.parametrize("script", SCRIPTS)
def test_nan_loss_stops_with_iteration_and_loss_named(script, checkpoint_of, tmp_path):
    state = torch.load(checkpoint_of(script), weights_only=True)
    critics = [state["critic"]] if "critic" in state else state["critics"] + state["target_critics"]
    for weights in critics:
        for tensor in weights.values():
            if tensor.is_floating_point():
                tensor.fill_(float("nan"))
    torch.save(state, tmp_path / "diverged.cleanrl_model")
    result = run_script(script, *tiny(script), "--resume", "diverged.cleanrl_model", "--total-timesteps", "200",
                        cwd=tmp_path)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-3000:]
    assert re.search(f"non-finite loss at {NAN_LOSS[script]}", result.stderr), result.stderr
    assert list(run_dir(tmp_path).glob("*.cleanrl_model"))


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_save_a_checkpoint(script, signum, tmp_path):
    proc = start_script(script, *tiny(script), "--total-timesteps", "10000000", cwd=tmp_path)
    try:
        for line in proc.stdout:  # wait until training is under way
            if line.startswith("iter 2/"):
                break
        proc.send_signal(signum)
        out = proc.communicate(timeout=60)[0]
    finally:
        proc.kill()
    assert proc.returncode == 130, out
    assert "checkpoint saved" in out
    (ckpt,) = run_dir(tmp_path).glob("*.cleanrl_model")
    state = torch.load(ckpt, weights_only=True)
    assert state["iteration"] >= 2 and state["global_step"] == state["iteration"] * 50  # TINY batch: 2 x 25


@pytest.mark.parametrize("script", SCRIPTS)
def test_periodic_checkpoint_survives_a_killed_run(script, tmp_path):
    """--checkpoint-interval 1: after SIGKILL (no handler runs) the last iteration's checkpoint
    is on disk and resumes."""
    proc = start_script(script, *tiny(script), "--total-timesteps", "10000000", "--checkpoint-interval", "1",
                        cwd=tmp_path)
    try:
        for line in proc.stdout:
            if line.startswith("iter 3/"):
                break
        proc.kill()
        proc.wait(timeout=60)
    finally:
        proc.kill()
    (ckpt,) = run_dir(tmp_path).glob("*.cleanrl_model")
    state = torch.load(ckpt, weights_only=True)
    assert state["iteration"] >= 3 and state["global_step"] == state["iteration"] * 50


@pytest.mark.parametrize("script", SCRIPTS)
def test_capture_video_writes_an_mp4(script, tiny_run, tmp_path):
    """The first state and one frame after each step of the recorded episode (speaker_listener's
    25 steps), readable as a video."""
    tiny_run(script, "--env", mpe_id(script, "mpe_speaker_listener"), "--capture-video", "--total-timesteps", "50")
    (video,) = (tmp_path / "videos").glob("*/step_50.mp4")
    frames = video_frames(video)
    assert len(frames) == 26 and frames[0].shape[2] == 3 and frames[0].std() > 0


def test_update_speed_runs_each_scripts_update_with_torch_alone():
    """benchmarks/update_speed.py runs the scripts' own update on a GPU machine that has PyTorch
    but neither tyro, TensorBoard nor the envs' packages: here with those imports made to fail."""
    code = ("import runpy, sys; sys.modules.update(dict.fromkeys(['tyro', 'tensorboard', 'gfootball', 'mpe2', "
            "'pettingzoo'])); sys.argv = ['update_speed.py', '--num-envs', '2', '--num-steps', '10', '--repeats', "
            "'1', '--threads', '1']; runpy.run_path('benchmarks/update_speed.py', run_name='__main__')")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    for name in ("happo", "happo_rga"):
        assert re.search(rf"\| `{name}.py` \| CPU .*, torch threads: 1 \| \d+\.\d\d \|", out.stdout), out.stdout
