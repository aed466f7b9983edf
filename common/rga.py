"""Relation-Aware Global Attention (RGA; Zhang et al., CVPR 2020) as HAPPO-RGA uses it (Li, Li,
Zhao and Tang, "Enhancing the HAPPO framework with RGA", section 4.2, equations 2-8): a feature map of entity tokens, gated first per token
(spatial branch, RGA-S) and then per channel (channel branch, RGA-C), pooled to one vector h.

A feature map is token-major, (N tokens, B samples, C channels), so that each branch's embedding
is one matrix product over all its nodes: the spatial branch maps the C values of all N x B
token nodes, the channel branch the N values of all B x C channel nodes. Differences from the
original module, all for a handful of entities inside a PPO policy (docs/ablations.md):
- no BatchNorm: rollout (batch = num_envs) and update (batch = minibatch) must give the same
  output for the same input, so that an update's first ratio is exactly 1;
- every reduced width is max(2, width // ratio), and the mask's hidden layer (eq. 6) keeps the
  width of its input: the inputs of these layers are ReLU outputs (>= 0), and without the
  BatchNorm that re-centres the original's pre-activations, a single ReLU unit with negative
  weights is dead for every input. With widths of 1, one mask in seven was constant from
  initialisation on; with these, none in 300 (spread actors, C = 16);
- tokens are a set of entities, so the spatial branch's relation embedding (eq. 4) is
  permutation-equivariant: W_r's weights on the relation vector [R(i,:), R(:,i)] tell only the
  node itself from the others. That leaves R(i,i) and the sums of the other nodes' affinities,
  which come from sums of the embedded nodes: O(N) per node, the N x N matrix is never formed.
  Channels keep their identities, so the channel branch's W_r is a full matrix, as the
  original's (and is applied without forming the C x C matrix either).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from common.tokens import TokenGroup


def reduced(width: int, ratio: int) -> int:
    return max(2, width // ratio)


def linear(n_in: int, n_out: int) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(layer.weight, nn.init.calculate_gain("relu"))
    nn.init.zeros_(layer.bias)
    return layer


def dense(x, layer: nn.Linear):
    """layer(x) for a 2-d x as one addmm. The rollout calls the attention every step, at batches
    (num_envs) where each call's overhead costs as much as its arithmetic, so the branches are
    written in as few calls as they can be (every layer on 2-d views, no module calls)."""
    return torch.addmm(layer.bias, x, layer.weight.t())


def mask(u, v, hidden: nn.Linear, out: nn.Linear):
    """M = sigmoid(W_2 ReLU(W_1 [u, v] + b_1) + b_2) (eq. 5-6) from the nodes' own embeddings u
    (eq. 3) and their embedded relations v (eq. 4), both (nodes, width): one value in (0, 1)
    per node."""
    return torch.sigmoid(dense(dense(torch.cat([u, v], -1), hidden).relu_(), out))


class SpatialRGA(nn.Module):
    """RGA-S over the N tokens of x (N, B, C) -> mask (N, B, 1) (eq. 2-7):

        t_i = ReLU(theta x_i), p_i = ReLU(phi x_i)     R(i, j) = t_i . p_j  (no softmax)
        u_i = ReLU(W_x x_i + b_x)                                         (eq. 3)
        v_i = ReLU(W_r [R(i,:), R(:,i)] + b_r), W_r tied as above, i.e.
            = ReLU(W_r' [R(i,i), mean_{j!=i} R(i,j), mean_{j!=i} R(j,i)] + b_r)   (eq. 2, 4)
    """

    def __init__(self, nodes: int, channels: int, ratio: int):
        super().__init__()
        self.f, relation_width = reduced(channels, ratio), reduced(nodes, ratio)
        self.embed = linear(channels, 3 * self.f)  # theta, phi and W_x in one product
        self.embed_relation = linear(3, relation_width)
        self.mask_hidden = linear(self.f + relation_width, self.f + relation_width)
        self.mask_out = linear(self.f + relation_width, 1)
        # relations() multiplies [t, t, p] by [p, p', t'] out of [t, p, u, t', p', u']
        f = torch.arange(self.f)
        self.register_buffer("left", torch.cat([f, f, f + self.f]))
        self.register_buffer("right", torch.cat([f + self.f, f + 4 * self.f, f + 3 * self.f]))

    def relations(self, z):
        """[R(i,i), mean_{j!=i} R(i,j), mean_{j!=i} R(j,i)] for every node, from z = [t, p, u]
        (N, B, 3f), with primes the means over the other nodes: sum_{j!=i} t_i . p_j =
        t_i . (sum_j p_j - p_i). Returns (N, B, 3)."""
        others = max(z.shape[0] - 1, 1)  # a single node has no others: its means are 0
        both = torch.cat([z, (z.sum(0) - z) / others], -1)
        products = both.index_select(-1, self.left) * both.index_select(-1, self.right)
        return products.view(*z.shape[:-1], 3, self.f).sum(-1)

    def forward(self, x):
        nodes, batch, channels = x.shape
        z = dense(x.view(-1, channels), self.embed).relu_()
        v = dense(self.relations(z.view(nodes, batch, -1)).view(-1, 3), self.embed_relation).relu_()
        return mask(z[:, 2 * self.f:], v, self.mask_hidden, self.mask_out).view(nodes, batch, 1)


class ChannelRGA(nn.Module):
    """RGA-C over the C channels of x (N, B, C) -> mask (B, C) (eq. 8): the same as RGA-S with
    channels as nodes and each channel's N token values as its feature, W_r a full matrix on
    the relation vector [R(c,:), R(:,c)] of the C x C affinities."""

    def __init__(self, nodes: int, channels: int, ratio: int):
        super().__init__()
        self.g, relation_width = reduced(nodes, ratio), reduced(channels, ratio)
        self.embed = linear(nodes, 3 * self.g)  # theta, phi, W_x over a channel's N values
        self.embed_relation = linear(2 * channels, relation_width)
        self.mask_hidden = linear(self.g + relation_width, self.g + relation_width)
        self.mask_out = linear(self.g + relation_width, 1)

    def embedded_relations(self, t, p):
        """W_r [R(c,:), R(:,c)] + b_r for every channel c, t and p (g, B, C): with W_r = [W_a, W_b],
        W_a R(c,:) = sum_k t_kc (W_a p_k) and W_b R(:,c) = sum_k p_kc (W_b t_k), the same numbers
        as forming R = t^T p (C x C per sample) in O(C g) per channel instead of O(C^2)."""
        g, batch, channels = t.shape
        w_row, w_col = self.embed_relation.weight.split(channels, dim=1)
        a = (p.reshape(-1, channels) @ w_row.t()).view(g, batch, 1, -1)
        b = (t.reshape(-1, channels) @ w_col.t()).view(g, batch, 1, -1)
        t, p = t.unsqueeze(-1), p.unsqueeze(-1)
        out = self.embed_relation.bias
        for k in range(g):  # g = max(2, N // ratio) terms: a few broadcasts beat tiny bmm's
            out = torch.addcmul(torch.addcmul(out, t[k], a[k]), p[k], b[k])
        return out  # (B, C, r)

    def forward(self, x):
        nodes, batch, channels = x.shape
        z = torch.addmm(self.embed.bias.unsqueeze(1), self.embed.weight, x.view(nodes, -1)).relu_()
        t, p, u = z.view(3 * self.g, batch, channels).split(self.g, 0)
        v = self.embedded_relations(t, p).relu_()
        m = mask(u.permute(1, 2, 0).reshape(batch * channels, -1), v.view(batch * channels, -1),
                 self.mask_hidden, self.mask_out)
        return m.view(batch, channels)


class RGABlock(nn.Module):
    """RGA-S over the N tokens, then RGA-C over the C channels of the gated map (eq. 8), then
    global average pooling over the tokens: x (N, B, C) -> h (B, C). Either branch can be
    switched off (ablations); with both off the block only pools."""

    def __init__(self, nodes: int, channels: int, ratio: int = 8, spatial: bool = True, channel: bool = True):
        super().__init__()
        self.spatial = SpatialRGA(nodes, channels, ratio) if spatial else None
        self.channel = ChannelRGA(nodes, channels, ratio) if channel else None

    def forward(self, x, pooled: bool = True):
        """h (B, C); with pooled=False the gated map x'' (N, B, C) itself (for tests). Pooling
        first is exact, as the channel mask is the same for every token: mean_i(M_c x'_i) =
        M_c mean_i(x'_i), and saves a pass over the map."""
        if self.spatial is not None:
            x = x * self.spatial(x)  # eq. 7
        channel_mask = self.channel(x) if self.channel is not None else 1.0
        return channel_mask * x.mean(0) if pooled else channel_mask * x


class TokenEmbedding(nn.Module):
    """Splits flat vectors (B, size) into the layout's tokens and maps each to C channels with
    the linear embedding of its kind: -> (N, B, C). One gather and one batched product for all
    kinds: tokens are zero-padded to the widest kind, and each token uses its kind's weights."""

    def __init__(self, layout: tuple[TokenGroup, ...], channels: int):
        super().__init__()
        kinds = list(dict.fromkeys(g.kind for g in layout))
        width = max(g.shape[1] for g in layout)
        self.size = 1 + max(int(g.index.max()) for g in layout)
        index, kind = [], []
        for g in layout:
            padded = torch.full((g.shape[0], width), self.size)  # position `size`: an appended 0
            padded[:, : g.shape[1]] = torch.as_tensor(g.index)
            index.append(padded)
            kind += [kinds.index(g.kind)] * g.shape[0]
        self.register_buffer("index", torch.cat(index).T.contiguous())  # (width, N)
        self.register_buffer("kind", torch.tensor(kind))  # (N,)
        self.weight = nn.Parameter(torch.zeros(len(kinds), width, channels))
        self.bias = nn.Parameter(torch.zeros(len(kinds), 1, channels))
        for k, name in enumerate(kinds):  # orthogonal on each kind's real features
            features = next(g.shape[1] for g in layout if g.kind == name)
            nn.init.orthogonal_(self.weight.data[k, :features], nn.init.calculate_gain("relu"))

    def forward(self, x):
        tokens = F.pad(x, (0, 1)).t()[self.index].permute(1, 2, 0)  # (N, B, width)
        return torch.baddbmm(self.bias[self.kind], tokens, self.weight[self.kind])


class RGAExtractor(nn.Module):
    """Flat observation (or state) -> h (C values): LayerNorm on the input (HARL's feature
    normalisation, as HAPPO's MLP), entity tokens embedded to C channels with a ReLU, one RGA
    block."""

    def __init__(self, layout: tuple[TokenGroup, ...], channels: int, ratio: int = 8,
                 spatial: bool = True, channel: bool = True):
        super().__init__()
        self.embed = TokenEmbedding(layout, channels)
        self.norm = nn.LayerNorm(self.embed.size)
        self.rga = RGABlock(len(self.embed.kind), channels, ratio, spatial, channel)
        self.out_dim = channels

    # Samples per pass. At an update's batch (football: 25,000 samples x 24 tokens x 32 channels,
    # a 77 MB map) each of the block's elementwise steps streams its operands from memory; a
    # chunk of 2,048 samples keeps its maps (6 MB) in cache from one step to the next, forward
    # and backward (autograd runs each chunk's backward as a unit). Samples are independent, so
    # the outputs are the same up to float rounding. Alone on a machine the speed is the same;
    # beside other processes that share the cache (two runs side by side, as sweeps run them)
    # we measured a football actor's forward and backward 2-5x faster. The rollout's batches
    # fit in one chunk.
    chunk = 2048

    def features(self, x):
        return self.rga(F.relu(self.embed(self.norm(x))))

    def forward(self, x):
        """(..., size) -> (..., C): any leading dimensions (the critic values whole rollouts)."""
        flat = x.reshape(-1, x.shape[-1])
        if len(flat) <= self.chunk:
            h = self.features(flat)
        else:
            h = torch.cat([self.features(part) for part in flat.split(self.chunk)])
        return h.view(*x.shape[:-1], -1)
