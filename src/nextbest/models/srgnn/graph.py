"""The session graph of SR-GNN, built for a whole batch of sessions at once.

A session's graph has one node per distinct item and a directed edge u -> v when v was clicked
right after u (repeats of an edge count once; a repeated click of one item is a self-loop).
Message passing reads two normalised adjacency matrices, as the authors' code builds them:

* incoming [n, n]: row v averages v's predecessors (each edge weighs 1 / in-degree of v);
* outgoing [n, n]: row u averages u's successors (each edge weighs 1 / out-degree of u).

`alias[b, i]` is the node of the i-th click of session b, so the node states can be read back
in click order for the attention readout. Nodes are the session's distinct items in ascending
item order; padding nodes (item 0, no edges) fill the node axis up to the batch's largest
graph and are never read back.

Serving asks for one session at a time; `build_graphs` then takes a NumPy path that gives the
same tensors more cheaply (a dozen small array operations instead of the batch's
sort-and-scatter; the model contract checks that stepping equals the batch path).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class SessionGraphs:
    nodes: torch.Tensor  # [B, n] int64 item of each node (0 on padding nodes)
    alias: torch.Tensor  # [B, T] int64 node of each click (0 on padding clicks)
    incoming: torch.Tensor  # [B, n, n] float32, row v: 1/indeg(v) on v's predecessors
    outgoing: torch.Tensor  # [B, n, n] float32, row u: 1/outdeg(u) on u's successors
    mask: torch.Tensor  # [B, T] bool, True on real clicks
    lengths: torch.Tensor  # [B] int64 clicks per session (>= 1)


def build_graphs(items: torch.Tensor, lengths: torch.Tensor) -> SessionGraphs:
    """Graphs of sessions `items` [B, T] whose first `lengths[b]` (>= 1) clicks are real."""
    batch, width = items.shape
    if batch == 1 and width and int(lengths[0]) == width:
        return _one_graph(items[0].numpy(), lengths.to(torch.int64))
    positions = torch.arange(width)
    mask = positions.unsqueeze(0) < lengths.unsqueeze(1)  # [B, T]
    # padding sorts after every item and forms one pseudo-node past the real ones
    sentinel = int(items.max()) + 1 if items.numel() else 1
    padded = items.masked_fill(~mask, sentinel)
    ordered, order = torch.sort(padded, dim=1, stable=True)  # [B, T]
    first = torch.ones_like(ordered, dtype=torch.bool)
    first[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    node_sorted = torch.cumsum(first.long(), dim=1) - 1  # [B, T] node of each sorted click
    alias = torch.empty_like(node_sorted).scatter_(1, order, node_sorted)  # [B, T]
    real_sorted = ordered != sentinel
    n_nodes = torch.where(real_sorted, node_sorted + 1, 0).amax(dim=1)  # [B]
    width_nodes = max(int(n_nodes.max()), 1)
    nodes = torch.zeros(batch, width_nodes, dtype=torch.int64)
    rows = torch.arange(batch).unsqueeze(1).expand_as(ordered)
    nodes[rows[real_sorted], node_sorted[real_sorted]] = ordered[real_sorted]
    alias = alias.masked_fill(~mask, 0)

    edges = mask[:, 1:]  # [B, T-1] a click followed by another real click
    adjacency = torch.zeros(batch, width_nodes, width_nodes)
    edge_rows = rows[:, 1:][edges]
    adjacency[edge_rows, alias[:, :-1][edges], alias[:, 1:][edges]] = 1.0  # u -> v
    outgoing = adjacency / adjacency.sum(dim=2, keepdim=True).clamp(min=1.0)
    reverse = adjacency.transpose(1, 2)  # row v: its predecessors u
    incoming = reverse / reverse.sum(dim=2, keepdim=True).clamp(min=1.0)
    return SessionGraphs(nodes, alias, incoming, outgoing, mask, lengths.to(torch.int64))


def _one_graph(clicks: np.ndarray, lengths: torch.Tensor) -> SessionGraphs:
    """`build_graphs` of one session without padding: the same nodes, alias and weights."""
    nodes, alias = np.unique(clicks, return_inverse=True)  # ascending items, as the batch path
    adjacency = np.zeros((len(nodes), len(nodes)), dtype=np.float32)
    adjacency[alias[:-1], alias[1:]] = 1.0  # u -> v
    outgoing = adjacency / np.maximum(adjacency.sum(axis=1, keepdims=True), 1.0)
    reverse = np.ascontiguousarray(adjacency.T)
    incoming = reverse / np.maximum(reverse.sum(axis=1, keepdims=True), 1.0)
    return SessionGraphs(
        torch.from_numpy(nodes.astype(np.int64))[None],
        torch.from_numpy(alias.astype(np.int64).reshape(1, -1)),
        torch.from_numpy(incoming)[None],
        torch.from_numpy(outgoing)[None],
        torch.ones(1, len(clicks), dtype=torch.bool),
        lengths,
    )
