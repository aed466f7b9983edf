"""Relation-Aware Global Attention (RGA; Zhang et al., CVPR 2020) as HAPPO-RGA uses it (paper
000, section 4.2, equations 2-8): a feature map of entity tokens, gated first per token
(spatial branch, RGA-S) and then per channel (channel branch, RGA-C), pooled to one vector h.

Shapes: a feature map is (batch, N nodes, C channels). Differences from the original module,
all for a handful of nodes inside a PPO policy (README, "HAPPO-RGA"):
- no BatchNorm: rollout (batch = num_envs) and update (batch = minibatch) must give the same
  output for the same input, so that an update's first ratio is exactly 1;
- every reduced width is max(1, width // ratio), so no layer has zero width for N = 1 or 2;
- the spatial relation vector is sorted: nodes are a set of entities, and sorting makes the
  spatial branch permutation-equivariant (the channel branch keeps channel order, as the
  original does).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from common.tokens import TokenGroup


def reduced(width: int, ratio: int) -> int:
    return max(1, width // ratio)


def linear(n_in: int, n_out: int) -> nn.Linear:
    layer = nn.Linear(n_in, n_out)
    nn.init.orthogonal_(layer.weight, nn.init.calculate_gain("relu"))
    nn.init.zeros_(layer.bias)
    return layer


class TokenEmbedding(nn.Module):
    """Splits flat vectors into the layout's tokens and maps each to C channels with the linear
    embedding of its kind: (..., size) -> (..., N, C). One gather and one product for all
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
        self.register_buffer("index", torch.cat(index))  # (N, width)
        self.register_buffer("kind", torch.tensor(kind))  # (N,)
        self.weight = nn.Parameter(torch.zeros(len(kinds), width, channels))
        self.bias = nn.Parameter(torch.zeros(len(kinds), channels))
        for k, name in enumerate(kinds):  # orthogonal on each kind's real features
            features = next(g.shape[1] for g in layout if g.kind == name)
            nn.init.orthogonal_(self.weight.data[k, :features], nn.init.calculate_gain("relu"))

    def forward(self, x):
        tokens = F.pad(x, (0, 1))[..., self.index]  # (..., N, width)
        return torch.einsum("...nf,nfc->...nc", tokens, self.weight[self.kind]) + self.bias[self.kind]


class RGABranch(nn.Module):
    """One branch over `nodes` nodes of `features` values each (eq. 2-7; eq. 8 for channels):

        R = theta(X) phi(X)^T                    pairwise affinities, nodes x nodes
        r_i = [R(i,:), R(:,i)]                   relation vector of node i (eq. 2), 2 x nodes
        u_i = ReLU(W_x x_i + b_x)                node's own feature embedded (eq. 3)
        v_i = ReLU(W_r r_i + b_r)                relation vector embedded (eq. 4)
        M_i = sigmoid(W_2 ReLU(W_1 [u_i, v_i] + b_1) + b_2)     one mask value (eq. 5-6)
        x'_i = M_i x_i                           (eq. 7)
    """

    def __init__(self, nodes: int, features: int, ratio: int, sort_relations: bool):
        super().__init__()
        f, r = reduced(features, ratio), reduced(2 * nodes, ratio)
        self.sort_relations = sort_relations
        self.theta, self.phi = linear(features, f), linear(features, f)
        self.embed_self, self.embed_relation = linear(features, f), linear(2 * nodes, r)
        self.mask_hidden, self.mask_out = linear(f + r, reduced(f + r, ratio)), linear(reduced(f + r, ratio), 1)

    def embedded_relations(self, x):
        """W_r r_i + b_r for every node i (eq. 2 and the linear part of eq. 4)."""
        t, p = F.relu(self.theta(x)), F.relu(self.phi(x))  # (B, nodes, f)
        if self.sort_relations:  # a node's relations as a multiset: independent of node order
            affinity = t @ p.transpose(-1, -2)  # R(i, j) = t_i . p_j
            relation = torch.cat([affinity.sort(-1).values, affinity.transpose(-1, -2).sort(-1).values], -1)
            return self.embed_relation(relation)
        # Without sorting the embedding is linear in R = T P^T, so R need not be formed:
        # W_a R(i,:) = (W_a P) t_i and W_b R(:,i) = (W_b T) p_i, the same numbers in
        # O(nodes f) per node instead of O(nodes^2) (for the channel branch, nodes = C channels)
        w_row, w_col = self.embed_relation.weight.split(x.shape[-2], dim=1)  # (r, nodes) each
        return (t @ (w_row @ p).transpose(-1, -2) + p @ (w_col @ t).transpose(-1, -2)
                + self.embed_relation.bias)

    def forward(self, x):
        """x (B, nodes, features) -> gated x and the mask (B, nodes, 1)."""
        y = torch.cat([F.relu(self.embed_self(x)), F.relu(self.embedded_relations(x))], -1)
        mask = torch.sigmoid(self.mask_out(F.relu(self.mask_hidden(y))))
        return x * mask, mask


class RGABlock(nn.Module):
    """RGA-S over the N tokens, then RGA-C over the C channels (eq. 8: each channel's N values
    are its feature), then global average pooling over the tokens: (B, N, C) -> h (B, C).
    Either branch can be switched off (ablations); with both off the block only pools."""

    def __init__(self, nodes: int, channels: int, ratio: int = 8, spatial: bool = True, channel: bool = True):
        super().__init__()
        self.spatial = RGABranch(nodes, channels, ratio, sort_relations=True) if spatial else None
        self.channel = RGABranch(channels, nodes, ratio, sort_relations=False) if channel else None

    def gate(self, x):
        """x (B, N, C) -> the gated feature map, same shape."""
        if self.spatial is not None:
            x, _ = self.spatial(x)
        if self.channel is not None:  # channels as nodes; contiguous, as strided products are slow
            x = self.channel(x.transpose(-1, -2).contiguous())[0].transpose(-1, -2)
        return x

    def forward(self, x):
        return self.gate(x).mean(-2)


class RGAExtractor(nn.Module):
    """Flat observation (or state) -> h: LayerNorm on the input (HARL's feature normalisation,
    as HAPPO's MLP), entity tokens embedded to C channels with a ReLU, one RGA block."""

    def __init__(self, layout: tuple[TokenGroup, ...], channels: int, ratio: int = 8,
                 spatial: bool = True, channel: bool = True):
        super().__init__()
        self.embed = TokenEmbedding(layout, channels)
        self.norm = nn.LayerNorm(self.embed.size)
        self.rga = RGABlock(len(self.embed.kind), channels, ratio, spatial, channel)
        self.out_dim = channels

    def forward(self, x):
        return self.rga(F.relu(self.embed(self.norm(x))))
