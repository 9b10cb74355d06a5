"""Recipe v2's levers, each as the proxy-noise issue states it: the averaged weights of a constant
model equal it, recomputed BatchNorm statistics equal a pass over the data, the val set is fixed,
disjoint from training and independent of ``--images``, the seed still changes the data order,
and nothing resumes across recipe versions."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from evaluators.coco_data import load_proxy_data
from evaluators.recipe import RECIPES, Recipe, RecipeError
from evaluators.train import (
    WeightAverage,
    _fresh_epoch_plan,
    recipe_data,
    recompute_batchnorm,
    train_proxy,
)
from tests.evaluators.test_proxy_train import SIZE, TinyDetector


def test_the_average_of_a_constant_model_is_that_model() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(2, 2))
    avg = WeightAverage(net, 0.99)
    with torch.no_grad():  # the average starts from a copy; move the model away, then hold it still
        for p in net.parameters():
            p.add_(1.0)
    for _ in range(2000):
        avg.update(net)
    for (name, a), b in zip(avg.model.state_dict().items(), net.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-5), name


def test_the_average_follows_a_moving_model_with_the_ramped_decay() -> None:
    """After one step from weight w0 to w1 the average is d·w0 + (1 − d)·w1 with d = 2/11."""
    net = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(0.0)
    avg = WeightAverage(net, 0.99)
    with torch.no_grad():
        net.weight.fill_(1.0)
    avg.update(net)
    assert avg.model.weight.item() == pytest.approx(1 - 2 / 11)


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 64), st.integers(0, 2**16))
def test_recomputed_batchnorm_statistics_equal_a_pass_over_the_data(n, seed) -> None:
    """One batch holding every image: the running mean and variance are that data's own."""
    data = _images(n, seed)
    net = nn.Sequential(nn.Conv2d(3, 5, 1), nn.BatchNorm2d(5))
    net[1].running_mean.fill_(7.0)  # stale statistics the recompute must replace
    recompute_batchnorm(net, _Proxy(data), n, batch_size=n)
    with torch.no_grad():
        y = net[0](data.float() / 255)
    flat = y.transpose(0, 1).reshape(5, -1)
    assert torch.allclose(net[1].running_mean, flat.mean(1), atol=1e-5)
    if flat.shape[1] > 1:
        assert torch.allclose(net[1].running_var, flat.var(1, unbiased=True), atol=1e-4)
    assert not net.training and net[1].momentum == 0.1  # left in eval mode, momentum restored


def test_the_val_set_is_fixed_disjoint_and_independent_of_images(tmp_path: Path) -> None:
    recipe = Recipe.named("v2", img_size=SIZE, epochs=2, val_images=24)
    small = recipe_data("shapes", recipe.replace(images=8), root=tmp_path)
    large = recipe_data("shapes", recipe.replace(images=40), root=tmp_path)
    fresh = recipe_data("shapes", recipe.replace(images=40, fresh_images=True), root=tmp_path)
    assert torch.equal(small.val.images, large.val.images) and small.val.gt == large.val.gt == fresh.val.gt
    assert len(large.val.images) == 24 and len(large.train.images) == 40
    assert len(fresh.train.images) == 80  # with fresh images: images x epochs
    train = {bytes(x.numpy()) for x in large.train.images}
    assert not train & {bytes(x.numpy()) for x in large.val.images}
    v1 = recipe_data("shapes", Recipe.named("v1", img_size=SIZE, images=200), root=tmp_path)
    assert len(v1.val.images) == 50  # v1: a quarter of the images, at least 50


def test_fresh_epochs_take_new_images_and_the_seed_changes_their_order() -> None:
    a0, _ = _fresh_epoch_plan(40, 10, seed=0, epoch=0)
    a1, _ = _fresh_epoch_plan(40, 10, seed=0, epoch=1)
    b0, _ = _fresh_epoch_plan(40, 10, seed=1, epoch=0)
    assert not set(a0.tolist()) & set(a1.tolist())  # no image repeats while the pool lasts
    assert a0.tolist() != b0.tolist()
    assert torch.equal(a0, _fresh_epoch_plan(40, 10, seed=0, epoch=0)[0])  # a pure function
    wrapped = torch.cat([_fresh_epoch_plan(8, 5, seed=0, epoch=e)[0] for e in range(4)])
    assert sorted(wrapped.tolist()[:8]) == list(range(8))  # a small pool is used whole before any repeat


def test_a_resume_under_another_recipe_version_is_refused(tmp_path: Path) -> None:
    data = load_proxy_data("shapes", img_size=SIZE, images=16, val_images=8, root=tmp_path)
    v1 = Recipe.named("v1", img_size=SIZE, epochs=1, batch_size=8)
    assert train_proxy(TinyDetector, data, v1, out_dir=tmp_path / "t", progress=False)["status"] == "ok"
    v2 = dataclasses.replace(RECIPES["v2"], img_size=SIZE, epochs=1, batch_size=8)
    with pytest.raises(
        ValueError, match=r"holds a training of recipe v1, not v2; .* --recipe v1, or another output folder$"
    ):
        train_proxy(TinyDetector, data, v2, out_dir=tmp_path / "t", progress=False)


def test_unknown_recipe_names_are_one_line() -> None:
    with pytest.raises(RecipeError, match=r"^--recipe: 'v9' is not accepted; accepted: v2, v1$"):
        Recipe.named("v9")
    with pytest.raises(RecipeError, match="schedule"):
        Recipe(schedule="step").validate()


class _Proxy:
    """The part of ProxyData the recompute reads."""

    def __init__(self, images: torch.Tensor) -> None:
        self.train = type("Split", (), {"images": images})()


def _images(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, 4, 4), generator=g, dtype=torch.uint8)


def test_the_final_epoch_records_the_val_loss_of_the_scored_weights(tmp_path: Path) -> None:
    """``val_loss`` is the mean detection loss over the val images (per batch of 32, weighted by
    batch size), recomputed here independently on the trained module."""
    from evaluators.detection import detection_loss

    data = load_proxy_data("shapes", img_size=SIZE, images=16, val_images=40, root=tmp_path)
    torch.manual_seed(0)
    net = TinyDetector(data.num_classes)
    recipe = Recipe.named("v1", img_size=SIZE, epochs=2, batch_size=8)
    result = train_proxy(net, data, recipe, progress=False, num_threads=1)
    assert "val_loss" not in result["history"][0] and result["history"][-1]["val_loss"] == result["val_loss"]
    net.eval()
    total = 0.0
    with torch.no_grad():
        for first in range(0, 40, 32):
            x = data.val.images[first : first + 32].float() / 255
            loss, _ = detection_loss([o.float() for o in net(x)], data.val.targets[first : first + 32])
            total += float(loss) * len(x)
    assert result["val_loss"] == pytest.approx(total / 40, rel=1e-4)
