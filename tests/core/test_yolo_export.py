"""``nas export --format yolov7|yolov9|torch`` against the real parsers and an independent cost/metrics route.

The YOLO exports are parsed by the repositories' own ``parse_model`` (tests/support/yolo_repos.py): the
parsed backbone + neck must have our params (``sum(numel)``) and FLOPs (``torch.utils.flop_counter``), and
the metrics of its torch.fx trace must be ours wherever the rewriting keeps layers whole (see
docs/full-scale-training.md for PRN, where it does not)."""

from __future__ import annotations

import dataclasses
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from nas.core.cost import cost, cost_by_scope
from nas.core.fx import analyze, from_module
from nas.core.metrics import gradient_path_metrics
from nas.core.summary import summarize
from nas.core.torch_source import to_source
from nas.core.yolo_yaml import ExportError, body_graph, to_rows, to_yaml
from search_spaces import compile_config, load_config
from search_spaces.config import preset_names
from search_spaces.space import SPACES
from tests.support import yolo_repos
from tests.support.helpers import METRIC_KEYS

ROOT = Path(__file__).resolve().parents[2]
YOLOR = [p for p in preset_names() if p.startswith("yolor")]

needs_repos = pytest.mark.skipif(
    not yolo_repos.available() and not os.environ.get("CI"),
    reason="make setup installs the YOLOv7/YOLOv9 parsers into .venv/yolo-repos (CI fails instead of skipping)",
)


def scalars(m: object) -> dict[str, object]:
    d = m if isinstance(m, dict) else dataclasses.asdict(m)
    return {k: d[k] for k in METRIC_KEYS}


def check(graph, flavour: str, metrics: bool) -> None:  # noqa: ANN001
    """Parse the export with the real parser (meta tensors) and compare the backbone + neck with ours."""
    layers = yolo_repos.parse(flavour, to_yaml(graph, flavour))
    body = yolo_repos.Body(layers, to_rows(graph, flavour)[2])
    ours = cost(body_graph(graph))
    by_scope = cost_by_scope(graph, 1)
    assert ours.params == by_scope["backbone"].params + by_scope["neck"].params  # what nas show prints
    assert sum(p.numel() for p in body.parameters()) == ours.params
    with FlopCounterMode(display=False) as fc:
        feats = body(torch.zeros(1, 3, graph.node("input").size[0], graph.node("input").size[1], device="meta"))
    assert fc.get_total_flops() == ours.flops
    assert [tuple(f.shape[1:]) for f in feats] == [
        (graph.node(f).channels, *graph.node(f).size) for f in yolo_repos_features(graph)
    ]
    if metrics:
        traced = from_module(body, (1, 3, *graph.node("input").size))
        assert scalars(gradient_path_metrics(traced)) == scalars(gradient_path_metrics(body_graph(graph)))


def yolo_repos_features(graph) -> list[str]:  # noqa: ANN001
    body = body_graph(graph)
    return [body.node(o).inputs[0] for o in body.outputs]


def has_partial_add(graph) -> bool:  # noqa: ANN001
    return any(n.op == "add" and not n.attrs["full"] for n in graph)


@needs_repos
@pytest.mark.parametrize("flavour", ["yolov7", "yolov9"])
@pytest.mark.parametrize("preset", YOLOR)
def test_presets_parse_in_the_real_repository_with_our_cost(preset: str, flavour: str) -> None:
    graph = compile_config(load_config(preset))
    check(graph, flavour, metrics=not has_partial_add(graph))


@needs_repos
@pytest.mark.parametrize("flavour", ["yolov7", "yolov9"])
def test_random_configs_parse_with_our_cost(flavour: str) -> None:
    """A sample of the 200 configs benchmarks/export_check.py checks (same seed)."""
    rng = random.Random(29)
    for _ in range(12):
        graph = compile_config(SPACES["yolor"].sample(rng))
        check(graph, flavour, metrics=not has_partial_add(graph))


@needs_repos
@pytest.mark.slow
@pytest.mark.parametrize(("preset", "flavour"), [("yolor-csp", "yolov7"), ("yolor-elan-2-1", "yolov9")])
def test_model_builds_and_gives_three_levels_at_640(preset: str, flavour: str, tmp_path: Path) -> None:
    """``Model(cfg)`` of the repository, unchanged (stride probe, bias init), then a 640 px forward."""
    graph = compile_config(load_config(preset))
    path = tmp_path / "model.yaml"
    path.write_text(to_yaml(graph, flavour))
    model = yolo_repos.load(flavour).Model(str(path)).train()
    out = model(torch.zeros(1, 3, 640, 640))
    shapes = [tuple(o.shape[-2:]) if flavour == "yolov9" else tuple(o.shape[2:4]) for o in out]
    assert shapes == [(80, 80), (40, 40), (20, 20)]
    assert [int(s) for s in model.stride] == [8, 16, 32]


@pytest.mark.parametrize("preset", ["yolor-prn", "yolor-csp-fusion-first"])
def test_torch_source_is_standalone_and_analyses_like_the_config(preset: str, tmp_path: Path) -> None:
    graph = compile_config(
        load_config(
            preset,
        )
    )
    graph = compile_config(dataclasses.replace(load_config(preset), img_size=128))
    path = tmp_path / "model.py"
    path.write_text(to_source(graph, preset))
    code = "import sys; sys.path.insert(0, '.'); import model; print(sorted(m for m in sys.modules if m.split('.')[0] in ('nas', 'search_spaces', 'evaluators')))"
    run = subprocess.run([sys.executable, "-P", "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"
    namespace: dict[str, object] = {}
    exec(compile(path.read_text(), str(path), "exec"), namespace)  # noqa: S102 - the file under test
    out = analyze(namespace["build"](), (1, 3, 128, 128))
    ours = summarize(graph)
    assert (out["params"], out["flops"]) == (cost(graph).params, cost(graph).flops)
    assert scalars(out) == scalars(ours)
    from nas.core.module import build

    assert set(namespace["build"]().state_dict()) == set(build(graph).state_dict())


def test_stop_gradient_and_classifiers_are_refused_in_one_line() -> None:
    cfg = load_config("yolor-v3")
    sg = dataclasses.replace(cfg, backbone=dataclasses.replace(cfg.backbone, stop_gradient="identity"))
    for flavour in ("yolov7", "yolov9"):
        with pytest.raises(ExportError, match="stop-gradient") as e:
            to_yaml(compile_config(sg), flavour)
        assert "\n" not in str(e.value)
        with pytest.raises(ExportError, match="no yolov"):
            to_yaml(compile_config(load_config("darknet53")), flavour)
    to_source(compile_config(sg))  # the torch format keeps the detach


def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    nas = [sys.executable, "-m", "nas"]
    cases = [
        (["yolor-csp", "--format", "darknet", "-o", str(tmp_path / "a")], "--format"),
        (["darknet53", "--format", "yolov9", "-o", str(tmp_path / "a")], "yolov9"),
        (["yolor-csp", "--format", "yolov7", "-o", str(tmp_path / "no" / "a")], "-o:"),
        (["yolor-csp", "--format", "yolov7", "-o", str(tmp_path)], "-o:"),
    ]
    for args, needle in cases:
        r = subprocess.run([*nas, "export", *args], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 2, r.stderr
        assert r.stderr.startswith("error: ") and needle in r.stderr and r.stderr.count("\n") == 1, r.stderr
    assert list(tmp_path.iterdir()) == []
    r = subprocess.run(
        [*nas, "export", "yolor-csp", "--format", "yolov9", "-o", str(tmp_path / "m.yaml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "DDetect" in (tmp_path / "m.yaml").read_text()
