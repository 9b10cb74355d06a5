"""The proxy training loop: it learns, resumes exactly, fails cleanly and reports every epoch.

A tiny stand-in detector with the searched detectors' output contract keeps these fast; the
real builder is exercised by ``test_train_from_config_uses_the_builder``.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from torch import nn

from evaluators.coco_data import ProxyData, load_proxy_data
from evaluators.detection import STRIDES, detection_loss, init_head_bias
from evaluators.recipe import Recipe
from evaluators.train import train_proxy

SIZE = 64


class TinyDetector(nn.Module):
    """Three stride-2 stages to P3, then P4 and P5: (B, 5 + nc, S/s, S/s) per level."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()

        def down(ci: int, co: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(ci, co, 3, 2, 1, bias=False), nn.BatchNorm2d(co), nn.SiLU())

        self.p3 = nn.Sequential(down(3, 8), down(8, 16), down(16, 16))
        self.p4, self.p5 = down(16, 32), down(32, 32)
        self.heads = nn.ModuleList(nn.Conv2d(c, 5 + num_classes, 1) for c in (16, 32, 32))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        p3 = self.p3(x)
        p4 = self.p4(p3)
        return [h(f) for h, f in zip(self.heads, (p3, p4, self.p5(p4)), strict=True)]

    def head_convs(self) -> list[tuple[int, nn.Conv2d]]:
        return list(zip(STRIDES, self.heads, strict=True))


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> ProxyData:
    root = tmp_path_factory.mktemp("runs")
    return load_proxy_data("shapes", img_size=SIZE, images=32, val_images=12, root=root)


def _train(data: ProxyData, out: Path | None, **kwargs: object) -> dict:
    recipe = Recipe(epochs=3, img_size=SIZE, batch_size=8, lr=5e-3, warmup_iters=4)
    recipe = dataclasses.replace(recipe, **{k: v for k, v in kwargs.items() if hasattr(recipe, k)})
    runtime = {k: v for k, v in kwargs.items() if not hasattr(recipe, k)}
    return train_proxy(TinyDetector, data, recipe, out_dir=out, num_threads=1, progress=False, **runtime)


def test_loss_falls_on_a_fixed_batch(data: ProxyData) -> None:
    torch.manual_seed(0)
    model = TinyDetector(data.num_classes)
    assert init_head_bias(model, SIZE, data.num_classes)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    x = data.train.images[:16].float() / 255
    targets = data.train.targets[:16]
    losses = []
    for _ in range(30):
        loss, parts = detection_loss(model(x), targets)
        assert set(parts) == {"box", "obj", "cls"}
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0], losses


def test_resume_after_an_epoch_continues_identically(data: ProxyData, tmp_path: Path) -> None:
    straight = _train(data, tmp_path / "a")
    assert straight["status"] == "ok" and straight["epochs_done"] == 3

    def stop_after_first(epoch: int, metrics: dict) -> None:
        if epoch == 1:
            raise RuntimeError("ASHA says stop")

    with pytest.raises(RuntimeError, match="ASHA"):
        _train(data, tmp_path / "b", report=stop_after_first)
    stopped = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert stopped["status"] == "stopped" and "ASHA" in stopped["reason"] and stopped["epochs_done"] == 1

    resumed = _train(data, tmp_path / "b")
    assert resumed["status"] == "ok"

    def strip(history: list[dict]) -> list[dict]:
        return [{k: v for k, v in e.items() if k != "epoch_time_s"} for e in history]

    assert strip(resumed["history"]) == strip(straight["history"])
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 3
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert a["ema"]["steps"] == b["ema"]["steps"] > 0  # v2 averages the weights: the average resumes too
    for name, tensor in a["ema"]["model"].items():
        assert torch.equal(tensor, b["ema"]["model"][name]), name


def test_metrics_json_report_and_finished_run(data: ProxyData, tmp_path: Path) -> None:
    seen = []
    result = _train(data, tmp_path, epochs=2, flops=1.5e8, report=lambda e, m: seen.append((e, m)))
    assert [e for e, _ in seen] == [1, 2]
    assert {"loss", "box", "obj", "cls", "AP", "AP50", "AP75", "APs", "APm", "APl"} <= set(seen[0][1])
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["status"] == "ok" and written["flops"] == 1.5e8
    assert [e["epoch"] for e in written["history"]] == [1, 2]
    assert written["images_per_s"] > 0 and written["wall_time_s"] >= written["train_time_s"] > 0
    assert written["AP50"] == written["history"][-1]["AP50"] == result["AP50"]
    assert written["history"][0]["loss"] > written["history"][1]["loss"]
    # re-running a finished run returns its result without training or reporting again
    again = _train(data, tmp_path, epochs=2, flops=1.5e8, report=lambda e, m: seen.append((e, m)))
    assert len(seen) == 2 and again["history"] == result["history"]
    with pytest.raises(ValueError, match="different run.*lr"):
        _train(data, tmp_path, epochs=2, lr=1e-3)


class _NaNDetector(TinyDetector):
    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [o * float("nan") for o in super().forward(x)]


def test_non_finite_loss_fails_with_reason(data: ProxyData, tmp_path: Path) -> None:
    result = train_proxy(_NaNDetector, data, Recipe(img_size=SIZE, epochs=2), out_dir=tmp_path, progress=False)
    assert result["status"] == "failed"
    assert result["reason"] == "non-finite loss (nan) at epoch 1, step 1"
    assert json.loads((tmp_path / "metrics.json").read_text())["status"] == "failed"


class _SilentDetector(TinyDetector):
    """Confidently predicts nothing anywhere."""

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [o * 0 - 30 for o in super().forward(x)]


def test_no_predictions_score_zero(data: ProxyData) -> None:
    result = train_proxy(_SilentDetector, data, Recipe(img_size=SIZE, epochs=1), progress=False)
    assert result["status"] == "ok"
    assert result["AP"] == result["AP50"] == 0.0


def test_train_from_config_uses_the_builder(tmp_path: Path) -> None:
    pytest.importorskip("search_spaces")
    import nas
    from evaluators.train import train_from_config

    result = train_from_config(
        "yolor-elan-2-1",
        Recipe(epochs=1, img_size=64, width_mult=0.25, images=8, val_images=8),
        val_images=4,
        data_root=tmp_path,
        out_dir=tmp_path / "run",
        progress=False,
        num_threads=1,
    )
    assert result["status"] == "ok" and result["epochs_done"] == 1
    cfg = nas.load_config("yolor-elan-2-1")
    assert result["config"]["img_size"] == 64 and result["config"]["num_classes"] == 6
    assert result["config"]["width"] == pytest.approx(cfg.width * 0.25)
    arch = dataclasses.replace(cfg, width=cfg.width * 0.25, img_size=64, num_classes=6)
    assert result["flops"] == nas.cost(nas.compile(arch)).flops > 0
    assert result["params"] == nas.cost(nas.compile(arch)).params
    assert (tmp_path / "run" / "metrics.json").is_file()
