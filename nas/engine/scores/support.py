"""Where the fitted score has evidence: the support of the gradient-path table.

The fitted score was fitted and tested on the table's designs (held-out τ 0.67 against FLOPs
0.44), but the cheap stage maximises it over the whole space and lands where the table has no
data (docs/gp-features.md, "Active rounds"). The *support* is measured on the score's own inputs
(the network-level metrics and FLOPs, logs as the score takes them), standardised by the table's
designs: a candidate's distance is the Euclidean distance to its nearest table design, and it is
*inside* when that is at most the radius, the 95th percentile of the table designs' own
leave-one-out nearest-neighbour distances. ``data/support.json`` is written by
``python -m benchmarks.gp_active --write-support R`` from the table and rounds 1 … R.

>>> s = support()
>>> s.radius > 0 and len(s.points) >= 120 and s.features[-1] == "flops"
True
>>> row = s.points_raw[0]
>>> round(float(s.distances([row])[0]), 6)  # a table design lies on the support
0.0
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

SUPPORT_FILE = Path(__file__).parent / "data" / "support.json"
#: the radius: this percentile of the table designs' leave-one-out nearest-neighbour distances
RADIUS_PERCENTILE = 95


@dataclasses.dataclass(frozen=True)
class Support:
    """The table's designs on the score's inputs (``points``: standardised), and the radius."""

    features: tuple[str, ...]
    log: tuple[bool, ...]
    mean: np.ndarray
    sd: np.ndarray
    points: np.ndarray
    radius: float
    source: str

    @property
    def points_raw(self) -> list[dict[str, float]]:
        """The table's designs as raw feature rows (inverse of the standardisation)."""
        raw = self.points * self.sd + self.mean
        raw = np.where(np.array(self.log), np.exp(raw), raw)
        return [dict(zip(self.features, map(float, r), strict=True)) for r in raw]

    def standardise(self, rows: Sequence[dict[str, float]]) -> np.ndarray:
        x = np.array([[float(r[f]) for f in self.features] for r in rows], dtype=float).reshape(len(rows), -1)
        x = np.where(np.array(self.log), np.log(np.maximum(x, 1e-12)), x)
        return (x - self.mean) / self.sd

    def distances(self, rows: Sequence[dict[str, float]]) -> np.ndarray:
        """Each row's distance to its nearest table design (rows: ``flops`` and the metrics)."""
        if not rows:
            return np.zeros(0)
        return nearest_distances(self.points, self.standardise(rows))

    def inside(self, rows: Sequence[dict[str, float]]) -> np.ndarray:
        return self.distances(rows) <= self.radius


def fit_matrix(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The support of table rows ``x`` (one design per row, inputs as the score takes them): the
    standardisation's mean and sd, the standardised points, and the radius.

    >>> mean, sd, z, radius = fit_matrix(np.array([[0.0], [1.0], [3.0]]))
    >>> [round(float(v), 3) for v in z[:, 0]], round(radius, 3)
    ([-1.069, -0.267, 1.336], 1.523)
    """
    mean, sd = x.mean(0), x.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    z = (x - mean) / sd
    d = np.sqrt(((z[:, None, :] - z[None, :, :]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    return mean, sd, z, float(np.percentile(d.min(1), RADIUS_PERCENTILE))


def nearest_distances(points: np.ndarray, z: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Each standardised row of ``z``'s Euclidean distance to its nearest point: exact (a table
    design lies at 0.0), in chunks of rows so 20,000 candidates stay within a few MB."""
    out = np.empty(len(z))
    for i in range(0, len(z), chunk):
        d = np.sqrt(((z[i : i + chunk, None, :] - points[None, :, :]) ** 2).sum(-1))
        out[i : i + chunk] = d.min(axis=1)
    return out


def fit_support(rows: Sequence[dict[str, float]], features: Sequence[str], log: Sequence[bool]) -> dict[str, Any]:
    """The support file's content for table designs ``rows`` (a pure function of them).

    >>> doc = fit_support([{"a": 0.0}, {"a": 1.0}, {"a": 3.0}], ["a"], [False])
    >>> [round(v, 3) for v in doc["points"][0]], round(doc["radius"], 3)
    ([-1.069], 1.523)
    """
    x = np.array([[float(r[f]) for f in features] for r in rows], dtype=float)
    mean, sd, z, radius = fit_matrix(np.where(np.array(log), np.log(np.maximum(x, 1e-12)), x))
    return {
        "features": list(features),
        "log": [bool(v) for v in log],
        "mean": mean.tolist(),
        "sd": sd.tolist(),
        "points": z.tolist(),
        "radius": radius,
    }


@functools.cache
def support(path: Path = SUPPORT_FILE) -> Support:
    """The shipped support (read once)."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    return Support(
        features=tuple(doc["features"]),
        log=tuple(doc["log"]),
        mean=np.array(doc["mean"]),
        sd=np.array(doc["sd"]),
        points=np.array(doc["points"]),
        radius=float(doc["radius"]),
        source=doc.get("source", ""),
    )
