"""``nas train``'s parser and runner: options reach the recipe, bad input is one clear error."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from evaluators.errors import DataError
from evaluators.recipe import DEFAULT, RECIPES
from nas.cli.train import add_train_parser, default_out_dir, recipe_flags, run_train


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nas")
    add_train_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["train", *argv])


def test_defaults_are_the_recipe_and_name_the_output_folder() -> None:
    args = _parse("yolor-elan-2-1")
    assert recipe_flags(args) == DEFAULT  # no flag given: the default named recipe, whole
    assert args.data == "shapes" and args.func is run_train
    assert default_out_dir(args) == Path("runs/train") / (
        f"yolor-elan-2-1-shapes-w{DEFAULT.width_mult:g}-{DEFAULT.img_size}px-n{DEFAULT.images}-e{DEFAULT.epochs}-s0-v2"
    )
    v1 = _parse("yolor-elan-2-1", "--recipe", "v1", "--epochs", "3")
    assert recipe_flags(v1) == RECIPES["v1"].replace(epochs=3)
    assert default_out_dir(v1).name.endswith("-e3-s0")  # v1 folders keep their old names, so they resume
    other = _parse("cfgs/mine.yaml", "--data", "/data/coco/annotations/instances_val2017.json", "--seed", "3")
    assert default_out_dir(other).name.startswith("mine-instances_val2017-")
    assert default_out_dir(other).name.endswith("-s3-v2")


def test_run_train_json(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("search_spaces")
    monkeypatch.chdir(tmp_path)  # the shapes cache goes to ./runs/data
    args = _parse(
        "yolor-elan-2-1",
        "--epochs",
        "1",
        "--images",
        "8",
        "--val-images",
        "8",
        "--img-size",
        "64",
        "--threads",
        "1",
        "--out",
        str(tmp_path / "out"),
        "--json",
    )
    assert run_train(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["status"] == "ok" and printed["out_dir"] == str(tmp_path / "out")
    assert printed["img_size"] == 64 and printed["train_images"] == 8
    assert (tmp_path / "runs" / "data").is_dir() and (tmp_path / "out" / "metrics.json").is_file()


def test_bad_input_raises_one_line_errors(tmp_path: Path) -> None:
    pytest.importorskip("search_spaces")
    with pytest.raises(DataError, match="data path not found"):
        run_train(_parse("yolor-elan-2-1", "--data", str(tmp_path / "missing"), "--out", str(tmp_path)))
    # one Recipe validates for nas train and nas search alike: the same words for the same value
    with pytest.raises(ValueError, match="--epochs: 0 is out of range; accepted: an integer from 1 to 1000"):
        run_train(_parse("yolor-elan-2-1", "--epochs", "0"))
    from evaluators.recipe import Recipe
    from nas.engine import SearchError, SearchOptions
    from nas.engine.validate import validate_options

    with pytest.raises(SearchError, match="--epochs: 0 is out of range; accepted: an integer from 1 to 1000"):
        validate_options(SearchOptions(budget=10**11, recipe=Recipe(epochs=0)))
    with pytest.raises(ValueError, match="multiple of 32"):
        run_train(_parse("yolor-elan-2-1", "--img-size", "100", "--out", str(tmp_path)))
