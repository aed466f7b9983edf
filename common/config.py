"""The paper's hyperparameters per env id, and the command line that applies them.

`--env X` makes the authors' tuned configuration for X (PKU-MARL/HARL, `tuned_configs/pettingzoo_mpe/` and
`tuned_configs/football/`) the defaults of the script's `Args`; any flag the
user passes overrides them, and `--help` shows the resolved values.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import signal
import sys

from common.envs import BATCHED_ENVS, ENV_IDS, GRF_ENVS, MPE_ENVS

# What every tuned on-policy config shares (MPE and football): `algo` and `model` sections.
ON_POLICY = dict(
    learning_rate=5e-4,
    critic_learning_rate=5e-4,
    gamma=0.99,
    gae_lambda=0.95,
    clip_coef=0.2,
    ent_coef=0.01,
    max_grad_norm=10.0,
    huber_delta=10.0,
)

# pettingzoo_mpe/*/happo/config.json: the same for spread, speaker_listener and reference, discrete
# and continuous. Actor and critic share epochs and minibatches in every tuned config.
MPE_ON_POLICY = dict(
    ON_POLICY,
    total_timesteps=10_000_000,
    num_envs=20,  # n_rollout_threads
    num_steps=200,  # episode_length: rollout length per env
    anneal_lr=False,  # use_linear_lr_decay
    update_epochs=5,  # ppo_epoch = critic_epoch
    num_minibatches=1,  # actor_num_mini_batch = critic_num_mini_batch
    hidden_sizes=(128, 128),
    eval_interval=25,
    eval_episodes=20,
    num_eval_envs=10,
)

# football/*/happo/config.json. The scenarios differ only where GRF_SCENARIO says.
GRF_ON_POLICY = dict(
    ON_POLICY,
    total_timesteps=25_000_000,
    num_envs=50,
    num_steps=200,
    anneal_lr=True,
    update_epochs=15,
    num_minibatches=2,
    hidden_sizes=(64, 64),
    eval_interval=25,
    eval_episodes=100,
    num_eval_envs=50,
    env_backend="gfootball",
    log_interval=1,  # ours: an iteration takes minutes on a small machine
)
GRF_SCENARIO = {
    "grf_ca_easy": {},
    "grf_ca_hard": dict(total_timesteps=50_000_000, num_steps=1000, eval_interval=10),
    "grf_3v1": {},
    "grf_ps": {},  # the authors' tuned config uses a recurrent (GRU) policy here; see docs/football.md
    "grf_rps": dict(anneal_lr=False),
}

# Our addition: the fast batched simulator wherever it exists (the same MDP as mpe2).
MPE_BACKEND = {env_id: "batched" if env_id in BATCHED_ENVS else "pettingzoo" for env_id in MPE_ENVS}

PRESETS: dict[str, dict[str, dict]] = {
    "happo": {
        **{env_id: {**MPE_ON_POLICY, "env_backend": MPE_BACKEND[env_id]} for env_id in MPE_ENVS},
        **{env_id: {**GRF_ON_POLICY, **GRF_SCENARIO[env_id]} for env_id in GRF_ENVS},
    },
}
# The HAPPO-RGA paper trains with HAPPO's settings; its attention has its own flags (--rga-*).
PRESETS["happo_rga"] = PRESETS["happo"]
# pettingzoo_mpe/*/haa2c: HAPPO's, `a2c_epoch` 5 being our update_epochs. Football has tuned
# configs for HAPPO only: HAPPO's there for HAA2C, MAPPO and HATRPO alike.
PRESETS["haa2c"] = PRESETS["happo"]
# pettingzoo_mpe/*/mappo: HAPPO's with `share_param` True, except on speaker_listener, whose two
# agents differ; football: MAPPO with parameter sharing, as the papers run it.
PRESETS["mappo"] = {env_id: {**preset, "share_param": "speaker_listener" not in env_id}
                    for env_id, preset in PRESETS["happo"].items()}
# pettingzoo_mpe/*/hatrpo: HAPPO's critic settings; the actors take trust-region steps (no
# learning rate, no entropy term) with `kl_threshold` 0.005; football: the default of HARL's
# hatrpo.yaml, 0.01. ls_step 10, backtrack_coeff 0.8 and accept_ratio 0.5 everywhere (Args).
PRESETS["hatrpo"] = {
    env_id: {**{k: v for k, v in preset.items() if k not in ("learning_rate", "ent_coef")},
             "kl_threshold": 0.01 if env_id in GRF_ENVS else 0.005}
    for env_id, preset in PRESETS["happo"].items()
}

# pettingzoo_mpe/*-continuous/hatd3: the same for all three tasks. HARL counts iterations in
# vector-env steps: evaluation every 1000 of them (20 of our iterations of 20 x 50 steps).
MPE_HATD3 = dict(
    total_timesteps=5_000_000,  # num_env_steps (HARL adds its 10k warm-up steps on top; see docs/hatd3.md)
    num_envs=20,
    warmup_steps=10_000,
    train_interval=50,
    update_per_train=1.0,
    buffer_size=1_000_000,
    batch_size=1000,
    learning_rate=5e-4,
    critic_learning_rate=1e-3,
    hidden_sizes=(128, 128),
    gamma=0.99,
    polyak=0.005,
    exploration_noise=0.1,
    policy_noise=0.2,
    noise_clip=0.5,
    policy_frequency=2,
    eval_interval=20,
    eval_episodes=20,
    num_eval_envs=10,
)
PRESETS["hatd3"] = {env_id: {**MPE_HATD3, "env_backend": MPE_BACKEND[env_id]}
                    for env_id, (_, continuous, _) in MPE_ENVS.items() if continuous}
# Why an algorithm has no preset for an env id.
NO_PRESET_REASON = {"hatd3": "HATD3 needs continuous actions"}


def fail(message: str) -> None:
    """Bad input: one line on stderr, exit status 2 (as argparse does)."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _flag_value(argv: list[str], name: str) -> str | None:
    """The value of `--name V` or `--name=V` in argv (the last one given), else None."""
    value = None
    for k, arg in enumerate(argv):
        if arg == name and k + 1 < len(argv):
            value = argv[k + 1]
        elif arg.startswith(name + "="):
            value = arg.split("=", 1)[1]
    return value


# What `--resume` does not take from the checkpoint: these belong to one invocation.
PER_INVOCATION = ("resume", "stop_at")
# What a resumed run cannot change: the task and the networks' shapes (the script is checked too).
FIXED_ON_RESUME = ("env", "hidden_sizes", "share_param", "rga_channels", "rga_ratio", "rga_spatial", "rga_channel")


def parse_args(args_cls, algo: str, argv: list[str] | None = None):
    """Parse the command line into `args_cls`, with the preset of `--env` as defaults; a value
    out of its range (common/checks.py), `--track` without wandb, or `--cuda` without a usable
    GPU, stops here. With `--resume PATH`, the checkpoint's arguments are the defaults instead
    (except PER_INVOCATION): the command line overrides them, one line per flag that then
    differs, and refuses to change FIXED_ON_RESUME."""
    import tyro

    from common.checks import check_checkpoint_file, check_cuda, check_ranges, read_checkpoint  # imports this module

    argv = sys.argv[1:] if argv is None else argv
    resume = _flag_value(argv, "--resume")
    saved = None
    if resume is not None:
        check_checkpoint_file(resume)
        ckpt = read_checkpoint(resume, None, None)  # imports torch: --resume only, as --cuda
        env_id = _flag_value(argv, "--env") or ckpt["env"]
        read_checkpoint(resume, algo, env_id, ckpt=ckpt)  # this script's, on this env
        saved = ckpt["args"]
    else:
        env_id = _flag_value(argv, "--env") or args_cls.env
    if env_id not in ENV_IDS:
        fail(f"unknown --env {env_id!r}; valid ids: {', '.join(ENV_IDS)}")
    if env_id not in PRESETS[algo]:
        reason = NO_PRESET_REASON.get(algo, f"{algo} has no preset for it")
        fail(f"{algo} cannot run --env {env_id}: {reason}; valid ids: {', '.join(PRESETS[algo])}")
    defaults = dataclasses.replace(args_cls(), env=env_id, **PRESETS[algo][env_id])
    if saved is not None:
        fields = {f.name for f in dataclasses.fields(args_cls)} - set(PER_INVOCATION)
        defaults = dataclasses.replace(defaults, **{k: _as_field(v) for k, v in saved.items() if k in fields})
    args = tyro.cli(args_cls, default=defaults, args=argv)
    check_ranges(args)  # every numeric flag against its declared range
    if saved is not None:
        report_changes(args, saved, resume)
    if getattr(args, "track", False) and importlib.util.find_spec("wandb") is None:
        fail("--track logs to Weights and Biases, which is not installed; install it with `pip install wandb`")
    if getattr(args, "cuda", False):
        check_cuda()
    return fit_short_run_evaluation(args, argv)


def _as_field(value):
    return tuple(value) if isinstance(value, list) else value  # tuples may come back as lists


def report_changes(args, saved: dict, resume: str) -> None:
    """A resumed run: refuse a change of FIXED_ON_RESUME (one line, exit 2), and print one line
    per other flag whose value differs from the checkpoint's."""
    for field in dataclasses.fields(args):
        name = field.name
        if name in PER_INVOCATION or name not in saved:
            continue
        value, before = getattr(args, name), _as_field(saved[name])
        if value == before:
            continue
        flag = "--" + name.replace("_", "-")
        if name in FIXED_ON_RESUME:
            fail(f"{flag} {_show(value)} differs from the checkpoint's {_show(before)} ({resume}); a resumed "
                 f"run keeps its env and network shapes: start a new run instead")
        print(f"resume: {flag} {_show(value)} (the checkpoint's: {_show(before)})", flush=True)


def _show(value) -> str:
    return " ".join(map(str, value)) if isinstance(value, tuple) else str(value)


def fit_short_run_evaluation(args, argv: list[str]):
    """A run shorter than one evaluation interval evaluates once, at its end: there the preset's
    evaluation (football: 100 episodes on 50 engines) would cost more than the run itself, so
    it shrinks to at most one env per training env and one episode per env. The sizes the
    command line gives are kept."""
    # env steps per iteration: a rollout (on-policy) or a collection phase (HATD3)
    batch = args.num_envs * getattr(args, "num_steps", getattr(args, "train_interval", 0))
    if batch <= 0 or args.eval_interval <= 0 or args.total_timesteps // batch >= args.eval_interval:
        return args
    given = {arg.split("=")[0] for arg in argv}
    if "--num-eval-envs" not in given:
        args.num_eval_envs = min(args.num_eval_envs, args.num_envs)
    if "--eval-episodes" not in given:
        args.eval_episodes = min(args.eval_episodes, args.num_eval_envs)
    return args


def exit_on_interrupt() -> None:
    """Until training starts: Ctrl-C or SIGTERM ends the run with one line and status 130
    (SystemExit, so whatever is starting cleans up, env workers included). The training loop
    installs its own handler, which saves a checkpoint."""
    def handler(signum, frame):
        print(f"\n{signal.Signals(signum).name} during start-up: stopped before training", file=sys.stderr, flush=True)
        sys.exit(130)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


def check_divides(batch_size: int, num_minibatches: int) -> None:
    if batch_size % num_minibatches:
        fail(f"--num-minibatches {num_minibatches} does not divide the batch of {batch_size} "
             f"(num-envs x num-steps); choose a divisor of {batch_size}")
