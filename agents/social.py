"""The retail investors' social graph as edge arrays, networkx's graph built only on demand.

``nx.barabasi_albert_graph`` spends most of its time growing a ``nx.Graph`` edge by
edge (about 0.5 s for 20,000 investors, 2.5 s for 100,000), yet a run only needs the
row-normalized adjacency. :func:`barabasi_albert_edges` makes the same random draws
in the same order as networkx, so it yields the same edges; :func:`to_networkx`
builds networkx's graph from them, node and neighbour order included, when a view
or a test asks for it.
"""

from __future__ import annotations

import random

import networkx as nx
import numpy as np
import scipy.sparse as sp


def barabasi_albert_edges(n: int, m: int, seed: int) -> np.ndarray:
    """(E, 2) int64 edges of ``nx.barabasi_albert_graph(n, m, seed=seed)``, in the order
    networkx adds them: the star on nodes ``0..m`` first, then ``m`` edges per new node.

    Same algorithm and draws as networkx 3 (``random.Random(seed)``, a set of ``m``
    distinct picks from the degree-repeated node list, iterated in set order), so the
    edges are identical. Requires ``1 <= m < n``.
    """
    rng = random.Random(seed)
    # random.choice(seq) is seq[rng._randbelow(len(seq))], and _randbelow(size) draws
    # getrandbits(size.bit_length()) until one is below size: the same draws written out
    # here, without the calls around them, which were most of the time (the test against
    # networkx guards this).
    getrandbits = rng.getrandbits
    # Each node once per edge it has: the star's ends, then per new node its m targets
    # (in set order) and m times itself, so block k of 2m holds node m + k's targets.
    repeated = [0] * m + list(range(1, m + 1))
    for source in range(m + 1, n):
        targets: set[int] = set()
        size = len(repeated)
        bits = size.bit_length()
        while len(targets) < m:
            r = getrandbits(bits)
            while r >= size:
                r = getrandbits(bits)
            targets.add(repeated[r])
        repeated.extend(targets)
        repeated.extend([source] * m)
    grown = np.asarray(repeated, dtype=np.int64).reshape(-1, 2 * m)[1:, :m]  # (n - m - 1, m)
    edges = np.empty((m + grown.size, 2), dtype=np.int64)
    edges[:m, 0], edges[:m, 1] = 0, np.arange(1, m + 1)  # the star on nodes 0..m
    edges[m:, 0] = np.repeat(np.arange(m + 1, n), m)
    edges[m:, 1] = grown.ravel()
    return edges


def to_networkx(n: int, m: int, edges: np.ndarray) -> nx.Graph:
    """The ``nx.Graph`` networkx's generator returns for these edges (same insertion order)."""
    graph = nx.star_graph(m)
    graph.add_nodes_from(range(m + 1, n))  # networkx adds each node with its first edge
    graph.add_edges_from(edges[m:].tolist())
    return graph


def _edge_order(n: int, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) of ``nx.Graph.edges()`` for a graph grown from ``edges``: by node, each
    node's neighbours in the order they were added, each edge once (``u < v``).

    Nodes enter in ascending order (a new node links only to older ones).
    """
    # Each edge enters both ends' neighbour lists at its turn: (a, b) then (b, a).
    src = edges.ravel()  # (2E,) a0, b0, a1, b1, ...
    dst = edges[:, ::-1].ravel()  # (2E,) b0, a0, b1, a1, ...
    order = np.argsort(src, kind="stable")  # (2E,) by node, insertion order within
    u, v = src[order], dst[order]
    later = v > u  # networkx lists an edge at the first of its ends it reaches
    return u[later], v[later]


def row_normalized_adjacency_from_edges(n: int, edges: np.ndarray) -> sp.csr_array:
    """(n, n) CSR adjacency of the edges with rows summing to one (zero rows if isolated).

    Built as ``row_normalized_adjacency(to_networkx(...), n)`` builds it (the same COO
    entries in the same order, the same conversions), so the floats are identical.
    """
    if n == 0:
        return sp.csr_array((0, 0), dtype=np.float64)
    u, v = _edge_order(n, edges)
    row = np.concatenate([u, v])  # (2E,) both directions, as networkx symmetrizes
    col = np.concatenate([v, u])
    data = np.ones(row.shape[0], dtype=np.float64)
    adjacency = sp.coo_array((data, (row, col)), shape=(n, n), dtype=np.float64).asformat("csr")
    degree = np.asarray(adjacency.sum(axis=1)).ravel()  # (n,)
    inverse = np.divide(1.0, degree, out=np.zeros(n), where=degree > 0)
    return sp.csr_array(sp.diags_array(inverse) @ adjacency)
