"""Optimal one-to-one matching of objects whose IoU clears a threshold.

StarDist [1]_ matches true and predicted objects with a Hungarian assignment
that first maximises the number of pairs with IoU >= threshold and then the
IoU sum. Solving that on the full n_true x n_pred matrix costs O(n^3). Most of
it is unnecessary: a pair with IoU > 0.5 is the only candidate of both its
objects, so above 0.5 the candidate pairs already form a matching. This module
splits the candidate graph into connected components, accepts single-edge
components directly, and runs the Hungarian algorithm [2]_ only on the rare
components where objects compete (IoU exactly 0.5, or thresholds below 0.5).

References
----------
.. [1] U. Schmidt, M. Weigert, C. Broaddus, G. Myers, "Cell Detection with
   Star-convex Polygons", MICCAI 2018, ``stardist.matching.matching``.
.. [2] H. W. Kuhn, "The Hungarian method for the assignment problem", Naval
   Research Logistics Quarterly 2 (1955) 83-97; shortest augmenting path
   form as in R. Jonker, A. Volgenant, Computing 38 (1987) 325-340.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

__all__ = ["linear_sum_assignment", "match_candidates"]


def linear_sum_assignment(cost: NDArray[np.float64]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Minimum-cost assignment of rows to columns.

    Parameters
    ----------
    cost : ndarray of float, shape (n, m)
        Finite cost matrix.

    Returns
    -------
    rows, cols : ndarray of intp
        ``min(n, m)`` pairs, sorted by row, minimising ``cost[rows, cols].sum()``;
        the same contract as ``scipy.optimize.linear_sum_assignment``.
    """
    cost = np.asarray(cost, dtype=np.float64)
    transposed = cost.shape[0] > cost.shape[1]
    if transposed:
        cost = cost.T
    n, m = cost.shape
    if n == 0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty.copy()
    # Potentials u (rows), v (columns); column 0 is a virtual start column.
    u = np.zeros(n + 1)
    v = np.zeros(m + 1)
    owner = np.zeros(m + 1, dtype=np.intp)  # 1-based row that owns column j, 0 = free
    way = np.zeros(m + 1, dtype=np.intp)
    for i in range(1, n + 1):
        owner[0] = i
        j0 = 0
        minv = np.full(m + 1, np.inf)
        used = np.zeros(m + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = owner[j0]
            free = ~used
            free[0] = False
            reduced = cost[i0 - 1] - u[i0] - v[1:]
            better = free[1:] & (reduced < minv[1:])
            minv[1:][better] = reduced[better]
            way[1:][better] = j0
            candidates = np.where(free[1:], minv[1:], np.inf)
            j1 = int(np.argmin(candidates)) + 1
            delta = candidates[j1 - 1]
            done = np.flatnonzero(used)
            u[owner[done]] += delta
            v[done] -= delta
            minv[1:][free[1:]] -= delta
            j0 = j1
            if owner[j0] == 0:
                break
        while j0:
            j1 = way[j0]
            owner[j0] = owner[j1]
            j0 = j1
    cols = np.flatnonzero(owner[1:]).astype(np.intp)
    rows = (owner[1:][cols] - 1).astype(np.intp)
    if transposed:
        rows, cols = cols, rows
    order = np.argsort(rows, kind="stable")
    return rows[order], cols[order]


def _components(rows: NDArray[np.intp], cols: NDArray[np.intp]) -> NDArray[np.intp]:
    """Connected-component id of each edge of a bipartite graph (union-find)."""
    row_nodes = {int(r): k for k, r in enumerate(np.unique(rows))}
    col_nodes = {int(c): k + len(row_nodes) for k, c in enumerate(np.unique(cols))}
    parent = list(range(len(row_nodes) + len(col_nodes)))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
        a, b = find(row_nodes[r]), find(col_nodes[c])
        if a != b:
            parent[a] = b
    return np.array([find(row_nodes[r]) for r in rows.tolist()], dtype=np.intp)


def match_candidates(
    rows: NDArray[np.intp], cols: NDArray[np.intp], score: NDArray[np.float64]
) -> NDArray[np.bool_]:
    """Choose a maximum matching among candidate pairs, ties broken by score sum.

    Parameters
    ----------
    rows, cols : ndarray of intp
        Object indices of each candidate pair (every pair listed once).
    score : ndarray of float
        Score of each pair in [0, 1] (the IoU).

    Returns
    -------
    ndarray of bool
        Which candidates are matched: no object appears in two matched pairs,
        the number of matched pairs is maximal and, among maximal matchings,
        the score sum is maximal.
    """
    chosen = np.zeros(len(rows), dtype=bool)
    if len(rows) == 0:
        return chosen
    row_deg = np.bincount(rows)
    col_deg = np.bincount(cols)
    simple = (row_deg[rows] == 1) & (col_deg[cols] == 1)
    chosen[simple] = True
    contested = np.flatnonzero(~simple)
    if len(contested) == 0:
        return chosen
    comp = _components(rows[contested], cols[contested])
    for label in np.unique(comp):
        edges = contested[comp == label]
        r_idx, r_pos = np.unique(rows[edges], return_inverse=True)
        c_idx, c_pos = np.unique(cols[edges], return_inverse=True)
        # Weight big + score: one more pair always outweighs any score sum.
        big = float(min(len(r_idx), len(c_idx)) + 1)
        weight = np.zeros((len(r_idx), len(c_idx)))
        weight[r_pos, c_pos] = big + score[edges]
        a_rows, a_cols = linear_sum_assignment(-weight)
        picked = weight[a_rows, a_cols] > 0
        lookup = {(int(r), int(c)): e for r, c, e in zip(r_pos, c_pos, edges, strict=True)}
        for r, c in zip(a_rows[picked].tolist(), a_cols[picked].tolist(), strict=True):
            chosen[lookup[(r, c)]] = True
    return chosen
