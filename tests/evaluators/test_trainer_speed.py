"""The faster proxy trainer (issue 17) trains the same thing: precision is a validated recipe
field recorded in metrics.json, the CPU layout/optimiser changes give the old update up to float
rounding, and bf16 runs stay reproducible and resumable."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from evaluators.coco_data import ProxyData, load_proxy_data
from evaluators.detection import detection_loss, init_head_bias
from evaluators.errors import DataError
from evaluators.recipe import PRECISIONS, Recipe, RecipeError
from evaluators.train import (
    NARROW_BATCHNORM,
    Runtime,
    _batch,
    _optimizer,
    prepare_model,
    resolve_runtime,
    train_proxy,
)
from tests.evaluators.test_proxy_train import SIZE, TinyDetector

CPU = torch.device("cpu")
OLD = Runtime(CPU, "fp32", channels_last=False, fused=False)


@pytest.fixture(autouse=True)
def one_thread() -> object:
    """Two threads on a shared 2-core machine run these tiny steps many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> ProxyData:
    return load_proxy_data("shapes", img_size=SIZE, images=24, val_images=8, root=tmp_path_factory.mktemp("runs"))


def _train(data: ProxyData, out: Path | None, **kwargs: object) -> dict:
    recipe = Recipe(epochs=2, img_size=SIZE, batch_size=8, lr=5e-3, warmup_iters=2)
    recipe = dataclasses.replace(recipe, **{k: v for k, v in kwargs.items() if hasattr(recipe, k)})
    runtime = {k: v for k, v in kwargs.items() if not hasattr(recipe, k)}
    return train_proxy(TinyDetector, data, recipe, out_dir=out, num_threads=1, progress=False, **runtime)


def _strip(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in e.items() if k != "epoch_time_s"} for e in history]


@pytest.mark.parametrize("bad", ["fp16", "FP32", "", None, 32])
def test_precision_is_validated_like_the_other_fields(bad: object) -> None:
    with pytest.raises(RecipeError, match=r"^--precision: .* is not accepted; accepted: auto, fp32, bf16$"):
        Recipe(precision=bad).validate()  # type: ignore[arg-type]
    for good in PRECISIONS:
        assert Recipe(precision=good).validate().precision == good


def test_auto_resolves_by_device() -> None:
    # fp32 on every CPU, AMX ones included: bf16 moved the ranking more than a seed (README)
    assert resolve_runtime("auto", CPU) == Runtime(CPU, "fp32", channels_last=True, fused=True)
    assert resolve_runtime("bf16", CPU).precision == "bf16"  # asked for: honoured
    assert resolve_runtime("fp32", CPU).precision == "fp32"
    cuda = torch.device("cuda")
    assert resolve_runtime("auto", cuda) == Runtime(cuda, "fp16", channels_last=False, fused=False)  # AMP as before
    assert resolve_runtime("fp32", cuda).autocast_dtype is None
    assert resolve_runtime("bf16", cuda).autocast_dtype is torch.bfloat16


def test_new_cpu_setup_gives_the_old_update(data: ProxyData) -> None:
    """channels-last + fused AdamW + foreach clipping: the same three steps as NCHW + per-op AdamW."""
    new = resolve_runtime("fp32", CPU)
    assert new.channels_last and new.fused
    nets = []
    for setup in (OLD, new):
        torch.manual_seed(0)
        net = prepare_model(TinyDetector(data.num_classes), setup)
        init_head_bias(net, SIZE, data.num_classes)
        opt = _optimizer(net, 5e-3, 0.05, fused=setup.fused)
        for step in range(3):
            idx = torch.arange(step * 8, step * 8 + 8)
            x, targets = _batch(data, idx, torch.zeros(8, dtype=torch.bool), CPU, setup.channels_last)
            assert x.is_contiguous(memory_format=torch.channels_last) == setup.channels_last
            loss, _ = detection_loss(net(x), targets)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0, foreach=setup.fused or None)
            opt.step()
        nets.append(net)
    # Adam divides by sqrt(v): a parameter whose gradient is ~0 moves by a sign-like lr step, so
    # float-rounding differences of the two layouts can flip a few such steps. Compare the whole
    # update instead: the two runs must differ by far less than the update itself.
    torch.manual_seed(0)
    init = prepare_model(TinyDetector(data.num_classes), OLD)
    init_head_bias(init, SIZE, data.num_classes)
    for (name, a), b, a0 in zip(
        nets[0].state_dict().items(), nets[1].state_dict().values(), init.state_dict().values(), strict=True
    ):
        if not a.is_floating_point():
            continue
        moved = (a - a0).norm()
        assert (a - b).norm() <= 1e-3 * moved + 1e-6, name


def test_narrow_batchnorms_run_nchw_and_hand_gradients_back_in_their_layout(data: ProxyData) -> None:
    """Channels-last BatchNorm backward is many times slower below 16 channels, and slowest of all
    when the gradient's layout differs from the input's: what reaches each BatchNorm kernel must be
    NCHW, both ways, for a narrow one and channels-last for a wide one."""
    from torch.utils._python_dispatch import TorchDispatchMode

    aten = torch.ops.aten
    seen: list[tuple[str, int, bool]] = []

    class Layouts(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            kernel = {aten.native_batch_norm.default: "forward", aten.native_batch_norm_backward.default: "backward"}
            if func in kernel:
                tensors = args[:2] if kernel[func] == "backward" else args[:1]  # (grad, input) or (input,)
                narrow = args[1 if kernel[func] == "backward" else 0].shape[1] < NARROW_BATCHNORM
                layout = torch.contiguous_format if narrow else torch.channels_last
                ok = all(t.is_contiguous(memory_format=layout) for t in tensors)
                seen.append((kernel[func], int(narrow), ok))
            return func(*args, **(kwargs or {}))

    net = prepare_model(TinyDetector(data.num_classes), resolve_runtime("fp32", CPU))
    x, targets = _batch(data, torch.arange(8), torch.zeros(8, dtype=torch.bool), CPU, True)
    x.requires_grad_(True)
    with Layouts():
        out = net(x)
        detection_loss(out, targets)[0].backward()
    assert all(o.is_contiguous(memory_format=torch.channels_last) for o in out)
    assert x.grad is not None and x.grad.is_contiguous(memory_format=torch.channels_last)
    assert {(k, n) for k, n, _ in seen} == {("forward", 0), ("forward", 1), ("backward", 0), ("backward", 1)}
    assert all(ok for *_, ok in seen), seen


def test_channels_last_builder_module_matches_nchw() -> None:
    """Splits, partial adds and concats of a real ELAN detector give the same outputs in either layout."""
    pytest.importorskip("search_spaces")
    from nas.core.module import build
    from search_spaces import compile_config, load_config

    base = load_config("yolor-elan-2-1")
    graph = compile_config(dataclasses.replace(base, width=base.width * 0.25, img_size=64, num_classes=3))
    torch.manual_seed(0)
    net = build(graph).eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        ref = net(x)
        prepare_model(net, resolve_runtime("fp32", CPU))
        out = net(x.contiguous(memory_format=torch.channels_last))
    for a, b in zip(ref, out, strict=True):
        assert a.shape == b.shape and torch.allclose(a, b, rtol=1e-4, atol=1e-4)


def test_precision_is_recorded_and_default_runs_repeat_exactly(data: ProxyData, tmp_path: Path) -> None:
    a = _train(data, tmp_path / "a")
    b = _train(data, tmp_path / "b")
    assert _strip(a["history"]) == _strip(b["history"])
    written = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert written["precision"] == resolve_runtime("auto", CPU).precision
    assert written["recipe"]["precision"] == "auto" and written["recipe"]["epochs"] == 2
    assert written["channels_last"] is True


def test_bf16_repeats_resumes_exactly_and_is_its_own_run(data: ProxyData, tmp_path: Path) -> None:
    straight = _train(data, tmp_path / "a", precision="bf16")
    assert straight["status"] == "ok" and straight["precision"] == "bf16"
    assert _strip(_train(data, tmp_path / "again", precision="bf16")["history"]) == _strip(straight["history"])

    def stop(epoch: int, metrics: dict) -> None:
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError):
        _train(data, tmp_path / "b", precision="bf16", report=stop)
    resumed = _train(data, tmp_path / "b", precision="bf16")
    assert _strip(resumed["history"]) == _strip(straight["history"])
    a = torch.load(tmp_path / "a" / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(t, b[k]) for k, t in a.items())
    # a bf16 checkpoint is never continued in fp32 (nor the reverse)
    with pytest.raises(DataError, match="different run.*precision"):
        _train(data, tmp_path / "a", precision="fp32")


def test_ranking_check_compares_the_change_with_every_seed_pair(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The benchmark behind the README's ranking table, on 2 presets at a toy recipe: the change is
    measured at each shared seed, the noise over every pair of old seeds, and a rerun resumes."""
    import argparse

    from benchmarks import proxy_ranking
    from nas.engine.stats import kendall_tau

    monkeypatch.setattr(proxy_ranking, "REDUCED", {"epochs": 1, "images": 16, "img_size": 64, "width_mult": 0.125})
    args = argparse.Namespace(precision="fp32", noise_seeds=3, configs=2, threads=1, out=tmp_path / "bench")
    first = proxy_ranking.ranking_check(args)
    presets = proxy_ranking.PRESETS[:2]
    assert set(first["configs"][presets[0]]) == {"old-seed0", "old-seed1", "old-seed2", "new-seed0", "new-seed1"}
    assert [c["pair"] for c in first["seed_noise"]] == [
        ["old-seed0", "old-seed1"],
        ["old-seed0", "old-seed2"],
        ["old-seed1", "old-seed2"],
    ]
    assert [c["pair"] for c in first["change"]] == [["old-seed0", "new-seed0"], ["old-seed1", "new-seed1"]]
    aps = {k: [first["configs"][p][k]["AP"] for p in presets] for k in ("old-seed1", "new-seed1")}
    assert first["change"][1]["kendall_tau"] == round(kendall_tau(aps["old-seed1"], aps["new-seed1"]), 4)
    assert first["holds"] == (
        first["kendall_tau"] >= first["seed_kendall_tau"] and first["mean_abs_dAP"] <= first["seed_mean_abs_dAP"]
    )
    written = json.loads((tmp_path / "bench" / "proxy_ranking_fp32.json").read_text())
    assert written["change"] == first["change"]
    again = proxy_ranking.ranking_check(args)  # every training resumes from its finished folder
    for preset, runs in first["configs"].items():
        assert {k: r["train_time_s"] for k, r in again["configs"][preset].items()} == {
            k: r["train_time_s"] for k, r in runs.items()
        }
