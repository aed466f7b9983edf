"""The RGA layer (common/rga.py) and the entity tokens it attends over (common/tokens.py)."""

import numpy as np
import pytest
import torch

from common.batched_spread import BatchedSpread
from common.envs import GRF_ENVS, AgentSpec, MPEEnv, SerialVecEnv
from common.rga import RGABlock, RGAExtractor, TokenEmbedding
from common.tokens import num_tokens, obs_layouts, state_layout


@pytest.mark.parametrize("nodes", [1, 2, 6, 24])
def test_shapes_and_masks_strictly_inside_0_1(nodes):
    torch.manual_seed(0)
    block = RGABlock(nodes, 16)
    x = torch.randn(nodes, 5, 16)  # token-major: (N, B, C)
    assert block(x).shape == (5, 16) and block(x, pooled=False).shape == (nodes, 5, 16)
    spatial_mask, channel_mask = block.spatial(x), block.channel(x)
    assert spatial_mask.shape == (nodes, 5, 1) and channel_mask.shape == (5, 16)
    for mask in (spatial_mask, channel_mask):
        assert ((mask > 0) & (mask < 1)).all()


def test_permuting_nodes_permutes_the_spatial_branch():
    """Nodes are a set of entities: the spatial branch is permutation-equivariant, so with the
    channel branch off the pooled h does not depend on the token order."""
    torch.manual_seed(0)
    block = RGABlock(6, 16, channel=False)
    x, perm = torch.randn(6, 4, 16), torch.tensor([3, 0, 5, 1, 4, 2])
    torch.testing.assert_close(block(x[perm], pooled=False), block(x, pooled=False)[perm])
    torch.testing.assert_close(block(x[perm]), block(x))
    # not vacuous: the gate changes the features, and the channel branch sees the order
    assert (block(x, pooled=False) - x).abs().max() > 1e-3
    with_channel = RGABlock(6, 16)
    assert (with_channel(x[perm]) - with_channel(x)).abs().max() > 1e-6


def test_spatial_relations_equal_the_explicit_formula():
    """[R(i,i), mean_{j!=i} R(i,j), mean_{j!=i} R(j,i)] of the formed N x N matrix R(i,j) = t_i . p_j."""
    torch.manual_seed(0)
    branch = RGABlock(6, 32).spatial
    z = torch.relu(branch.embed(torch.randn(6, 5, 32)))  # [t, p, u] per node
    t, p = z[..., : branch.f], z[..., branch.f: 2 * branch.f]
    affinity = torch.einsum("ibf,jbf->bij", t, p)
    diagonal = affinity.diagonal(0, 1, 2)
    explicit = torch.stack([diagonal, (affinity.sum(2) - diagonal) / 5, (affinity.sum(1) - diagonal) / 5], -1)
    torch.testing.assert_close(branch.relations(z), explicit.transpose(0, 1))


def test_channel_relations_equal_the_explicit_formula():
    """The channel branch embeds its relation vectors without forming the C x C matrix R: the
    same numbers as W_r [R(c,:), R(:,c)] + b_r with R = t^T p formed."""
    torch.manual_seed(0)
    branch = RGABlock(24, 32).channel  # g = 3 features per channel
    t, p = torch.rand(2, branch.g, 5, 32).unbind(0)
    affinity = torch.einsum("kbc,kbd->bcd", t, p)  # (B, C, C)
    explicit = branch.embed_relation(torch.cat([affinity, affinity.transpose(1, 2)], -1))
    torch.testing.assert_close(branch.embedded_relations(t, p), explicit)


def test_both_branches_off_is_the_identity():
    x = torch.randn(6, 3, 8)
    block = RGABlock(6, 8, spatial=False, channel=False)
    assert torch.equal(block(x, pooled=False), x) and torch.equal(block(x), x.mean(0))


def test_no_mask_is_constant_at_initialisation():
    """Every mask depends on its input from the start: with the original's reduced widths of 1
    and no BatchNorm, a ReLU unit over non-negative inputs was dead for every input in about
    one spread actor in seven (docs/ablations.md)."""
    layout = obs_layouts("mpe_spread")[0]
    for seed in range(50):
        torch.manual_seed(seed)
        extractor = RGAExtractor(layout, 16)
        x = torch.relu(extractor.embed(extractor.norm(torch.randn(256, 18))))
        spatial_mask = extractor.rga.spatial(x)
        channel_mask = extractor.rga.channel(x * spatial_mask)
        assert spatial_mask.std(1).min() > 1e-4 and channel_mask.std(0).min() > 1e-4, seed


def test_gradients_reach_every_parameter():
    torch.manual_seed(0)
    extractor = RGAExtractor(state_layout("mpe_speaker_listener"), 16, ratio=4)
    extractor(torch.randn(32, 14)).pow(2).sum().backward()
    for name, p in extractor.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def real_vectors(env_id: str, n: int | None = None):
    """Real observations (all agents side by side) and states of 2 envs after 20 random steps;
    spread with n agents on the batched simulator (mpe2's spread has 3)."""
    if env_id in GRF_ENVS:
        pytest.importorskip("gfootball", reason="Google Research Football is installed by `bash setup.sh`")
    envs = BatchedSpread(2, N=n) if n else SerialVecEnv(env_id, 2)
    rng = np.random.default_rng(0)
    obs, state = envs.reset(seed=0)
    for _ in range(20):
        actions = np.stack([rng.integers(0, a.action_dim, 2) for a in envs.agents], -1).astype(np.float32)
        obs, state, *_ = envs.step(actions)
    envs.close()
    return obs, state, envs.agents


def split_and_reassemble(layout, x: np.ndarray) -> np.ndarray:
    out = np.full_like(x, np.nan)
    for g in layout:
        out[..., g.index] = x[..., g.index]
    return out


ENV_CASES = [("mpe_spread", 3), ("mpe_spread", 6), ("mpe_speaker_listener", None), ("mpe_reference", None),
             *[(env_id, None) for env_id in GRF_ENVS]]


@pytest.mark.parametrize("env_id, n", ENV_CASES)
def test_every_value_lands_in_exactly_one_token(env_id, n):
    """Split the real observations and state into tokens and put them back: nothing lost, nothing
    counted twice."""
    obs, state, agents = real_vectors(env_id, n)
    layouts = obs_layouts(env_id, n)
    assert len(layouts) == len(agents)
    splits = np.cumsum([a.obs_dim for a in agents])[:-1]
    for layout, o, agent in zip(layouts, np.split(obs, splits, -1), agents):
        positions = np.concatenate([g.index.ravel() for g in layout])
        assert np.array_equal(np.sort(positions), np.arange(agent.obs_dim))
        assert np.array_equal(split_and_reassemble(layout, o), o)
    layout = state_layout(env_id, n)
    positions = np.concatenate([g.index.ravel() for g in layout])
    assert np.array_equal(np.sort(positions), np.arange(state.shape[-1]))
    assert np.array_equal(split_and_reassemble(layout, state), state)
    if env_id in GRF_ENVS:
        assert num_tokens(layouts[0]) == num_tokens(layout) == 24


def tokens_of(layout, kind, x):
    (g,) = [g for g in layout if g.kind == kind]
    return x[..., g.index]


def test_tokens_hold_the_entities_values():
    """Hand-picked entries of real vectors: spread's landmark and other-agent tokens, and on
    football the ball, a player and the active-player flags."""
    obs, _, _ = real_vectors("mpe_spread", 3)
    spread = obs_layouts("mpe_spread")[0]
    o = obs[0, :18]
    assert np.array_equal(tokens_of(spread, "self", o)[0], o[0:4])
    assert np.array_equal(tokens_of(spread, "landmark", o)[2], o[8:10])  # third landmark's rel. position
    assert np.array_equal(tokens_of(spread, "other_agent", o)[1], np.r_[o[12:14], o[16:18]])  # position, comm

    pytest.importorskip("gfootball", reason="Google Research Football is installed by `bash setup.sh`")
    obs, state, agents = real_vectors("grf_3v1")
    o, s = obs[0, :115], state[0]
    football = obs_layouts("grf_3v1")[0]
    assert np.array_equal(tokens_of(football, "ball", o)[0], o[88:97])
    assert np.array_equal(tokens_of(football, "left_player", o)[2], np.r_[o[4:6], o[26:28], o[99]])
    active = np.flatnonzero(o[97:108])[0]
    assert tokens_of(football, "left_player", o)[active, 4] == 1.0  # this agent's active player
    state_tokens = tokens_of(state_layout("grf_3v1"), "left_player", s)
    assert state_tokens.shape == (11, 4 + 3) and state_tokens[active, 4] == 1.0  # agent 0 controls it
    assert np.array_equal(tokens_of(state_layout("grf_3v1"), "game_mode", s)[0], s[97:104])


def test_each_kind_has_its_own_embedding():
    """Two tokens with the same values but different kinds embed differently; tokens of one kind
    share the map."""
    layout = obs_layouts("mpe_spread")[0]  # self (4 values), landmarks (2), other agents (4)
    embed = TokenEmbedding(layout, 8)
    x = torch.zeros(1, 18)
    x[0, 4:6] = x[0, 6:8] = torch.tensor([0.3, -0.7])  # landmarks 0 and 1
    x[0, 0:2] = torch.tensor([0.3, -0.7])  # self, first two values
    out = embed(x)[:, 0]  # tokens: self, landmark x3, other x2
    torch.testing.assert_close(out[1], out[2])
    assert (out[0] - out[1]).abs().max() > 1e-3


@pytest.mark.parametrize("env_id", ["mpe_spread", "mpe_speaker_listener_continuous", "grf_ca_hard"])
def test_rollout_and_update_give_the_same_log_probs(env_id):
    """No BatchNorm: an actor's log-prob of a sample does not depend on the batch around it, so
    the rollout (batch = num_envs) and the update (a shuffled minibatch) agree."""
    import happo_rga
    from common.config import parse_args

    args = parse_args(happo_rga.Args, "happo_rga", ["--env", env_id])
    # football's agents as FootballEnv declares them, without starting an engine
    agents = [AgentSpec(115, True, 19)] * GRF_ENVS[env_id][1] if env_id in GRF_ENVS else MPEEnv(env_id).agents
    torch.manual_seed(0)
    for spec, layout in zip(agents, obs_layouts(env_id)):
        actor = happo_rga.Actor(spec, args.hidden_sizes, layout, args)
        obs = torch.randn(64, spec.obs_dim)
        with torch.no_grad():
            rollout = [actor.act(o) for o in obs.split(20)]  # batches of num_envs
            actions, logp = (torch.cat(x) for x in zip(*rollout))
            perm = torch.randperm(64)
            update_logp, _ = actor.evaluate(obs[perm], actions[perm])
        torch.testing.assert_close(update_logp, logp[perm])


def explicit_extractor(extractor: RGAExtractor, layout, x):
    """The extractor written out from the formulas with its own weights, nothing folded: each
    kind's tokens embedded on their own, the N x N and C x C affinity matrices formed, every
    mask layer applied to its concatenated input (eq. 2-8), then pooling."""
    def lin(layer, v):
        return v @ layer.weight.t() + layer.bias

    def mask(u, v, branch):
        return torch.sigmoid(lin(branch.mask_out, torch.relu(lin(branch.mask_hidden, torch.cat([u, v], -1)))))

    x = extractor.norm(x)
    kinds = list(dict.fromkeys(g.kind for g in layout))
    w, b = extractor.embed.weight, extractor.embed.bias
    tokens = [x[:, g.index] @ w[kinds.index(g.kind), : g.shape[1]] + b[kinds.index(g.kind)] for g in layout]
    x = torch.relu(torch.cat(tokens, 1))  # (B, N, C)
    n = x.shape[1]
    spatial = extractor.rga.spatial
    t, p, u = torch.relu(lin(spatial.embed, x)).split(spatial.f, -1)
    r = t @ p.transpose(1, 2)  # R(i, j) = t_i . p_j
    diagonal = r.diagonal(0, 1, 2)
    others = max(n - 1, 1)
    relation = torch.stack([diagonal, (r.sum(2) - diagonal) / others, (r.sum(1) - diagonal) / others], -1)
    x = x * mask(u, torch.relu(lin(spatial.embed_relation, relation)), spatial)  # eq. 7
    channel = extractor.rga.channel
    t, p, u = torch.relu(lin(channel.embed, x.transpose(1, 2))).split(channel.g, -1)  # per channel: (B, C, g)
    r = t @ p.transpose(1, 2)  # R(c, d) = t_c . p_d
    v = torch.relu(lin(channel.embed_relation, torch.cat([r, r.transpose(1, 2)], -1)))
    return mask(u, v, channel).squeeze(-1) * x.mean(1)


LAYOUT_CASES = [(env_id, n, which) for env_id, n in ENV_CASES for which in ("obs", "state")]


@pytest.mark.parametrize("env_id, n, which", LAYOUT_CASES)
def test_extractor_equals_the_explicit_formulas(env_id, n, which):
    """On every env's layouts, in chunks (as at an update's batch) and whole: the same h and the
    same gradients as the formulas written out."""
    layout = obs_layouts(env_id, n)[0] if which == "obs" else state_layout(env_id, n)
    torch.manual_seed(0)
    extractor = RGAExtractor(layout, 32)
    for p in extractor.parameters():  # away from the initialisation's zeros (the embedding's bias)
        p.data.add_(0.1 * torch.randn_like(p))
    x = torch.randn(50, extractor.embed.size)
    expected = explicit_extractor(extractor, layout, x)
    expected_grads = torch.autograd.grad(expected.square().sum(), list(extractor.parameters()))
    for chunk in (7, 50):
        extractor.chunk = chunk
        h = extractor(x)
        torch.testing.assert_close(h, expected, rtol=1e-5, atol=1e-6)
        for got, want in zip(torch.autograd.grad(h.square().sum(), list(extractor.parameters())), expected_grads):
            torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
