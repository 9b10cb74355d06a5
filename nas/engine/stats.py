"""Statistics the search uses: average ranks and Kendall's τ (the live calibration of the
cheap score) and Pareto fronts (selection, promotion, the report).

Plain numpy functions over sequences, in the style of networkx's algorithms: each says what it
computes and its cost. The studies' own statistics (bootstrap CIs, the rank models they fit,
hypervolume) are no part of the product: they live with the studies that report them.

>>> kendall_tau([1, 2, 3, 4], [10, 20, 40, 30])
0.6666666666666666
>>> pareto_fronts([(0.3, 10.0), (0.2, 5.0), (0.1, 20.0)])
[[1, 0], [2]]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


# -- rank correlation --------------------------------------------------------------------------------
def ranks(x: Sequence[float]) -> np.ndarray:
    """Average ranks (ties share the mean rank), as scipy.stats.rankdata."""
    a = np.asarray(x, dtype=float)
    order = np.argsort(a, kind="mergesort")
    ranks = np.empty(len(a))
    ranks[order] = np.arange(1, len(a) + 1)
    for v in np.unique(a):
        tie = a == v
        if tie.sum() > 1:
            ranks[tie] = ranks[tie].mean()
    return ranks


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's τ-b (tie-corrected), O(n²): n is tens here. NaN when either side is constant."""
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    i, j = np.triu_indices(len(a), 1)
    da, db = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
    n_a, n_b = np.count_nonzero(da), np.count_nonzero(db)
    if not n_a or not n_b:
        return float("nan")
    return float((da * db).sum() / math.sqrt(n_a * n_b))


# -- fronts ------------------------------------------------------------------------------------
def pareto_fronts(points: Sequence[tuple[float, float]]) -> list[list[int]]:
    """Non-dominated sorting for (maximise a, minimise b): peel fronts with a sorted sweep,
    O(n log n) per front. Equal points share a front."""
    remaining = list(range(len(points)))
    fronts = []
    while remaining:
        remaining.sort(key=lambda i: (points[i][1], -points[i][0]))
        front, rest, best = [], [], -math.inf
        for i in remaining:
            if points[i][0] > best or (front and points[i] == points[front[-1]]):  # equal points tie
                front.append(i)
                best = points[i][0]
            else:
                rest.append(i)
        fronts.append(front)
        remaining = rest
    return fronts
