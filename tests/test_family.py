"""What MAPPO, HAA2C and HATRPO change in HAPPO's update: parameter sharing, the unclipped A2C
loss, and the trust-region step (conjugate gradient, Fisher-vector product, line search)."""

import copy
from types import SimpleNamespace

import pytest
import torch
from torch.func import functional_call

import haa2c
import hatrpo
import mappo
from common.envs import AgentSpec
from conftest import TINY, run_dir, run_script
from test_happo_core import ARGS

SPEC = AgentSpec(6, True, 4)
GAUSSIAN = AgentSpec(5, False, 2)


def batch(actor, size: int = 64, seed: int = 0):
    """Observations, sampled actions and their log-probs under `actor`."""
    torch.manual_seed(seed)
    obs = torch.randn(size, actor.body[0].normalized_shape[0])
    with torch.no_grad():
        actions, logp = actor.act(obs)
    return obs, actions, logp


# MAPPO

def test_shared_actor_trains_on_every_agents_samples_in_equal_shares(monkeypatch):
    """Parameter sharing: one PPO step on all agents' samples together; each of the 2
    minibatches holds half of every agent's samples (as the authors' code); every sample is
    seen once per epoch."""
    actor = mappo.Actor(SPEC, (8,))
    agents = 3
    obs = [torch.randn(40, 6) + 100 * k for k in range(agents)]  # agent k's rows are near 100 k
    with torch.no_grad():
        actions, logps = zip(*[actor.act(o) for o in obs])
    seen = []
    evaluate = actor.evaluate
    monkeypatch.setattr(actor, "evaluate", lambda o, a: (seen.append(o.clone()), evaluate(o, a))[1])
    args = SimpleNamespace(**{**vars(ARGS), "update_epochs": 1})
    stats = mappo.mappo_update_actors([actor] * agents, [torch.optim.Adam(actor.parameters())] * agents, obs,
                                      list(actions), list(logps), torch.randn(40), args)
    assert len(seen) == 2 and set(stats) == {0, 1, 2}
    for minibatch in seen:
        owner = (minibatch[:, 0] / 100).round().long()
        assert torch.bincount(owner, minlength=agents).tolist() == [20, 20, 20]
    assert torch.equal(torch.cat(seen).sort(0).values, torch.cat(obs).sort(0).values)


def test_unshared_actors_each_train_on_their_own_samples():
    torch.manual_seed(0)
    actors = [mappo.Actor(SPEC, (8,)) for _ in range(2)]
    before = copy.deepcopy(actors)
    obs = [torch.randn(32, 6) for _ in actors]
    with torch.no_grad():
        actions, logps = zip(*[a.act(o) for a, o in zip(actors, obs)])
    mappo.mappo_update_actors(actors, [torch.optim.Adam(a.parameters(), lr=1e-2) for a in actors], obs,
                              list(actions), list(logps), torch.randn(32), ARGS)
    for a, b in zip(actors, before):
        assert not torch.equal(a.head.weight, b.head.weight)
    assert not torch.equal(actors[0].head.weight, actors[1].head.weight)


@pytest.mark.parametrize("env_id, flags, shared", [
    ("mpe_spread", [], True),
    ("mpe_spread", ["--no-share-param"], False),
    ("mpe_speaker_listener", ["--share-param"], False),  # heterogeneous agents: forced off
])
def test_mappo_script_shares_parameters_where_it_can(env_id, flags, shared, tmp_path):
    result = run_script("mappo.py", *TINY, "--env", env_id, "--save-model", *flags, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    if env_id == "mpe_speaker_listener":
        assert "parameter sharing off: the agents of mpe_speaker_listener differ" in result.stdout
    (ckpt,) = run_dir(tmp_path).glob("*.cleanrl_model")
    first, *others = torch.load(ckpt, weights_only=True)["actors"]
    same = [all(torch.equal(first[k], other[k]) for k in first) if first.keys() == other.keys() else False
            for other in others]
    assert all(same) if shared else not any(same)


# HAA2C

def test_haa2c_loss_is_the_unclipped_factor_weighted_objective():
    """One full-batch step with SGD (lr 1): the parameters move by minus the gradient of
    -mean(M r A) - ent_coef * entropy, computed here on a copy. The ratios lie far outside the
    clip range, where PPO-clip's gradient would differ."""
    torch.manual_seed(1)
    actor = haa2c.Actor(SPEC, (8,))
    obs, actions, logp = batch(actor)
    old_logp = logp + torch.linspace(-1.0, 1.0, len(logp))  # ratios from e^-1 to e^1
    advantages, factor = torch.randn(len(logp)), torch.rand(len(logp)) + 0.5
    args = SimpleNamespace(**{**vars(ARGS), "update_epochs": 1, "num_minibatches": 1, "max_grad_norm": 1e9})

    reference = copy.deepcopy(actor)
    new_logp, entropy = reference.evaluate(obs, actions)
    ratio = torch.exp(new_logp - old_logp)
    loss = -(factor * ratio * advantages).mean() - args.ent_coef * entropy.mean()
    grads = torch.autograd.grad(loss, list(reference.parameters()), retain_graph=True)
    clipped = -(factor * torch.min(ratio * advantages, ratio.clamp(0.8, 1.2) * advantages)).mean()
    clipped_grads = torch.autograd.grad(clipped - args.ent_coef * entropy.mean(), list(reference.parameters()))
    assert not torch.allclose(grads[-2], clipped_grads[-2], atol=1e-4), "the batch must tell the losses apart"

    stats = haa2c.train_actor(actor, torch.optim.SGD(actor.parameters(), lr=1.0), obs, actions, old_logp,
                              advantages, factor, args, "agent 0")
    assert stats["policy_loss"] == pytest.approx(-(factor * ratio * advantages).mean().item(), rel=1e-5)
    for new, old, g in zip(actor.parameters(), reference.parameters(), grads):
        torch.testing.assert_close(new.detach(), old.detach() - g, rtol=1e-5, atol=1e-6)


# HATRPO

def test_conjugate_gradient_solves_a_positive_definite_system():
    torch.manual_seed(0)
    q = torch.randn(8, 8, dtype=torch.float64)
    a = q @ q.T + torch.eye(8, dtype=torch.float64)
    b = torch.randn(8, dtype=torch.float64)
    x = hatrpo.conjugate_gradient(lambda v: a @ v, b, iters=8)
    torch.testing.assert_close(x, torch.linalg.solve(a, b))


@pytest.mark.parametrize("spec", [SPEC, GAUSSIAN], ids=["categorical", "gaussian"])
def test_fisher_vector_product_equals_the_hessian_of_the_kl(spec):
    """(H + damping I) v against H formed explicitly: the Hessian of the mean KL(pi_old || pi_theta)
    w.r.t. the flat parameters at theta = theta_old, on a tiny network, in float64."""
    torch.manual_seed(0)
    actor = hatrpo.Actor(spec, (4, 3)).double()
    with torch.no_grad():
        for p in actor.parameters():  # away from init, where some layers are still zero
            p.add_(0.3 * torch.randn_like(p))
    obs = torch.randn(32, spec.obs_dim, dtype=torch.float64)
    names = [n for n, _ in actor.named_parameters()]
    shapes = [p.shape for p in actor.parameters()]
    theta0 = torch.nn.utils.parameters_to_vector(actor.parameters()).detach()
    old = actor.dist(obs)
    old = hatrpo.make_dist(tuple(t.detach() for t in ((old.logits,) if spec.discrete else (old.loc, old.scale))))

    def kl_at(theta):
        params = dict(zip(names, [t.view(s) for t, s in zip(theta.split([s.numel() for s in shapes]), shapes)]))
        return hatrpo.mean_kl(old, hatrpo.make_dist(functional_call(actor, params, (obs,))))

    hessian = torch.autograd.functional.hessian(kl_at, theta0)
    v = torch.randn_like(theta0)
    torch.testing.assert_close(hatrpo.fisher_vector_product(actor, obs, 0.0)(v), hessian @ v)
    torch.testing.assert_close(hatrpo.fisher_vector_product(actor, obs, 0.1)(v), hessian @ v + 0.1 * v)


def trust_region_problem(spec, seed=0):
    torch.manual_seed(seed)
    actor = hatrpo.Actor(spec, (16,))
    obs, actions, logp = batch(actor, 256, seed)
    return actor, obs, actions, logp, torch.randn(len(logp)), torch.rand(len(logp)) + 0.5


@pytest.mark.parametrize("spec", [SPEC, GAUSSIAN], ids=["categorical", "gaussian"])
def test_an_accepted_step_keeps_the_kl_bound_and_improves_the_surrogate(spec):
    actor, obs, actions, logp, advantages, factor = trust_region_problem(spec)
    before = copy.deepcopy(actor)
    stats = hatrpo.train_actor(actor, obs, actions, logp, advantages, factor, ARGS, "agent 0")
    assert stats["accepted"] == 1.0
    with torch.no_grad():
        kl = hatrpo.mean_kl(before.dist(obs), actor.dist(obs)).item()
        surrogate = (factor * torch.exp(actor.evaluate(obs, actions)[0] - logp) * advantages).mean().item()
    assert 0 < kl < ARGS.kl_threshold and kl == pytest.approx(stats["approx_kl"], rel=1e-4)
    assert surrogate > (factor * advantages).mean().item()  # the old policy's surrogate (ratio 1)
    assert stats["policy_loss"] == pytest.approx(-surrogate, rel=1e-4)


def test_a_search_that_can_only_fail_leaves_the_parameters_bit_for_bit(monkeypatch):
    """A step direction of the wrong sign: every fraction of it lowers the surrogate, the line
    search rejects all, and the actor keeps its exact parameters; the stats say rejected."""
    actor, obs, actions, logp, advantages, factor = trust_region_problem(SPEC)
    before = copy.deepcopy(actor.state_dict())
    solve = hatrpo.conjugate_gradient
    monkeypatch.setattr(hatrpo, "conjugate_gradient", lambda *a, **k: -solve(*a, **k))
    stats = hatrpo.train_actor(actor, obs, actions, logp, advantages, factor, ARGS, "agent 0")
    assert stats["accepted"] == 0.0 and stats["approx_kl"] == 0.0
    assert all(torch.equal(actor.state_dict()[k], before[k]) for k in before)
