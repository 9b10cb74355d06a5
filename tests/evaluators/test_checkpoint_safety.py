"""A checkpoint holds only tensors and plain data and is read with ``weights_only=True`` (issue 31):
one that would run code when unpickled is refused, the code does not run, and the training starts
over as with any unusable checkpoint."""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from evaluators.checkpoint import get_rng_state, load_checkpoint, save_checkpoint, set_rng_state
from tests.evaluators.test_proxy_train import _train
from tests.evaluators.test_proxy_train import data as data  # noqa: F401 - the module's fixture


def _touch(path: str) -> None:
    Path(path).write_text("code from a checkpoint ran\n")


class Payload:
    """Unpickling this calls ``_touch(marker)``: what a planted checkpoint would do with os.system."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (_touch, (self.marker,))


def _malicious(path: Path, marker: Path) -> None:
    """A checkpoint with every key a real one has, plus an object whose unpickling runs code."""
    torch.save(
        {"fingerprint": {}, "epoch": 1, "model": {}, "history": [], "rng": Payload(marker)},
        path,
    )


def _draws() -> tuple:
    """One draw of each generator; numpy's standard normal takes the gaussian it had cached."""
    return random.random(), float(np.random.rand()), float(np.random.standard_normal()), float(torch.rand(1))


def test_rng_state_round_trips_through_a_weights_only_load(tmp_path: Path) -> None:
    random.seed(3)
    np.random.seed(4)
    torch.manual_seed(5)
    np.random.standard_normal()  # numpy caches the second gaussian: part of the state
    state = get_rng_state()
    expected = _draws()
    torch.save({"rng": state}, tmp_path / "rng.pt")
    loaded = torch.load(tmp_path / "rng.pt", weights_only=True)["rng"]  # no allowlist
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)
    set_rng_state(loaded)
    assert _draws() == expected


def test_malicious_checkpoint_is_refused_without_running_it(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    marker = tmp_path / "ran.txt"
    path = tmp_path / "checkpoint.pt"
    _malicious(path, marker)
    with caplog.at_level(logging.WARNING, logger="evaluators.train"):
        assert load_checkpoint(path, torch.device("cpu")) is None
    assert not marker.exists()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "\n" not in lines[0], lines
    assert "unusable checkpoint ignored" in lines[0] and "tensors and plain data" in lines[0], lines[0]


def test_training_over_a_planted_checkpoint_starts_over_and_runs_no_code(data, tmp_path: Path) -> None:  # noqa: F811
    marker = tmp_path / "ran.txt"
    out = tmp_path / "run"
    out.mkdir()
    _malicious(out / "checkpoint.pt", marker)
    result = _train(data, out, epochs=1)
    assert not marker.exists()
    assert result["status"] == "ok" and [h["epoch"] for h in result["history"]] == [1]
    state = torch.load(out / "checkpoint.pt", weights_only=True)  # replaced by a safe one
    assert state["epoch"] == 1 and set(state["rng"]) >= {"python", "numpy", "torch"}


def test_a_checkpoint_that_would_need_more_than_plain_data_is_never_written(tmp_path: Path) -> None:
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"epoch": 1, "w": torch.zeros(2)})
    before = path.read_bytes()
    with pytest.raises(TypeError, match="numpy"):
        save_checkpoint(path, {"epoch": 2, "loss": np.float64(0.5)})  # a numpy scalar: refused on load
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.pt"]
