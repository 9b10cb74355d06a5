"""benchmarks/gp_replicates.py: two independent 2-seed means per design. Only designs with all four
seeds count; the picking score is the rank average the search uses; replicates that agree give
ICC 1 and replicates of pure seed noise about 0; bad input is one line."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from benchmarks import gp_replicates as gr
from benchmarks.lib.stats import icc1


def rows(values: dict[str, list[tuple[float, float]]], seeds: tuple[int, ...]) -> list[dict]:
    return [
        {"scale": "reduced", "fidelity": "full", "status": "ok", "design": d, "seed": s, "AP": ap, "val_loss": loss}
        for d, pairs in values.items()
        for s, (ap, loss) in zip(seeds, pairs, strict=True)
    ]


def test_only_designs_with_all_four_seeds_count_and_seeds_keep_their_order() -> None:
    table = rows({"a": [(0.1, 1.0), (0.2, 0.9)], "b": [(0.3, 0.8), (0.4, 0.7)]}, (0, 1))
    new = rows({"a": [(0.5, 0.6), (0.6, 0.5)]}, (2, 3))
    data = gr.replicates(table, new, ["a", "b"])
    assert data["ids"].tolist() == ["a"]
    assert data["AP"].tolist() == [[0.1, 0.2, 0.5, 0.6]] and data["val_loss"].tolist() == [[1.0, 0.9, 0.6, 0.5]]


def test_the_picking_score_is_the_rank_average_of_ap_and_minus_loss() -> None:
    ap, loss = np.array([0.1, 0.3, 0.2]), np.array([0.5, 0.9, 0.1])
    # ranks of AP 0, 2, 1; of -loss 1, 0, 2; averaged and scaled by n - 1 = 2
    assert gr.picking_score(ap, loss).tolist() == [0.25, 0.5, 0.75]


def test_agreeing_replicates_give_icc_one_and_seed_noise_alone_about_zero() -> None:
    rng = random.Random(0)
    base = {f"d{i}": 0.05 + 0.01 * i for i in range(30)}
    same = {d: [(b, 1 - b)] * 4 for d, b in base.items()}
    data = gr.replicates(
        rows({d: v[:2] for d, v in same.items()}, (0, 1)), rows({d: v[2:] for d, v in same.items()}, (2, 3)), list(base)
    )
    r = gr.analyze(data, n_boot=50)
    assert r["designs"] == 30 and r["AP"]["icc_two_seed_mean"] == pytest.approx(1.0)
    assert r["rankavg(AP,-val_loss)"]["icc_two_seed_mean"] == pytest.approx(1.0)
    noise = {d: [(0.1 + rng.gauss(0, 0.02), 1 + rng.gauss(0, 0.02)) for _ in range(4)] for d in base}
    data = gr.replicates(
        rows({d: v[:2] for d, v in noise.items()}, (0, 1)),
        rows({d: v[2:] for d, v in noise.items()}, (2, 3)),
        list(base),
    )
    r = gr.analyze(data, n_boot=50)
    assert abs(r["AP"]["icc_two_seed_mean"]) < 0.5 and abs(r["AP"]["icc_single_training"]) < 0.3
    lo, hi = r["AP"]["icc_ci95"]
    assert lo <= r["AP"]["icc_two_seed_mean"] <= hi
    means = np.stack([data["AP"][:, :2].mean(1), data["AP"][:, 2:].mean(1)], axis=1)  # cross-check
    assert r["AP"]["icc_two_seed_mean"] == pytest.approx(icc1(means.tolist())["icc"])


def test_analyze_without_designs_is_one_line(monkeypatch, tmp_path, capsys) -> None:
    empty = tmp_path / "none.jsonl"
    with pytest.raises(SystemExit) as e:
        gr.main(["--analyze", "--results-file", str(empty)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.startswith("error: ") and err.count("\n") == 1
    reg = json.loads(gr.REGISTRATION.read_text())
    assert reg["seeds"] == [2, 3] and len(reg["designs"]) == gr.DESIGNS and reg["rule"] == gr.RULE
