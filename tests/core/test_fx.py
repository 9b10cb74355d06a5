"""The torch.fx front end (nas/core/fx/): what it maps, what it refuses, and that it leaves the model
alone."""

from __future__ import annotations

import copy
import doctest

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import nas
import nas.core.fx
from nas.core.cost import cost
from nas.core.fx import TraceError, UnsupportedOpError, analyze, from_module
from nas.core.ir import LayerGraph
from nas.core.metrics import gradient_path_metrics
from tests.support.helpers import METRIC_KEYS

SHAPE = (1, 3, 16, 16)


def metrics(model: nn.Module, shape: tuple[int, ...] = SHAPE) -> dict:
    return gradient_path_metrics(from_module(model, shape)).to_dict()


def without_names(d: dict) -> dict:
    return {**d, "layers": [{k: v for k, v in r.items() if k != "name"} for r in d["layers"]]}


def flops_of(model: nn.Module, shape: tuple[int, ...] = SHAPE) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(shape))
    return counter.get_total_flops()


def test_docstring_examples() -> None:
    assert doctest.testmod(nas.core.fx).failed == 0


# -- what it maps -----------------------------------------------------------------------------
class CSPish(nn.Module):
    """A CSP stage written with chunk, as third-party code would."""

    def __init__(self) -> None:
        super().__init__()
        self.base = nn.Conv2d(3, 8, 1)
        self.block = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1), nn.SiLU(), nn.Conv2d(4, 4, 3, padding=1))
        self.transition = nn.Conv2d(8, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        path, cross = self.base(x).chunk(2, dim=1)
        return self.transition(torch.cat((self.block(path), cross), 1))


def csp_graph() -> LayerGraph:
    g = LayerGraph(3, (16, 16))
    base = g.conv(g.input_name, 8, name="base")
    path = g.conv(g.conv(g.split(base, 0, 4), 4, 3, name="block.0"), 4, 3, name="block.2")
    g.output(g.conv(g.concat([path, g.split(base, 4, 8)]), 8, name="transition"))
    return g


def test_chunk_and_cat_resolve_to_split_and_concat() -> None:
    assert metrics(CSPish()) == gradient_path_metrics(csp_graph()).to_dict()


@pytest.mark.parametrize(
    "slicer",
    [
        lambda t: (t[:, :4], t[:, 4:]),
        lambda t: torch.split(t, [4, 4], dim=1),
        lambda t: t.split(4, 1),
        lambda t: (t.narrow(1, 0, 4), t.narrow(1, 4, 4)),
        lambda t: torch.chunk(t, 2, 1),
        lambda t: (t[:, 0:4, ...], t[:, -4:]),
    ],
    ids=["getitem", "torch.split", "Tensor.split", "narrow", "torch.chunk", "ellipsis-negative"],
)
def test_every_way_of_slicing_channels(slicer) -> None:  # noqa: ANN001
    class Net(CSPish):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            path, cross = slicer(self.base(x))
            return self.transition(torch.cat([self.block(path), cross], dim=-3))

    assert metrics(Net()) == gradient_path_metrics(csp_graph()).to_dict()


def test_partial_add_written_as_graphnet_writes_it_is_one_ir_add() -> None:
    g = LayerGraph(3, (16, 16))
    a = g.conv(g.input_name, 8, name="a")
    b = g.conv(g.input_name, 6, name="b")
    g.output(g.conv(g.add(a, b, dst=(2, 5), src=(1, 4)), 4, name="head"))
    with torch.device("meta"):
        model = nas.build(g)
    back = from_module(model, SHAPE)
    adds = [n.attrs for n in back if n.op == "add"]
    assert adds == [{"dst": (2, 5), "src": (1, 4), "full": False}]
    assert [n.inputs for n in back if n.op == "add"] == [("a.conv", "b.conv")]

    class Handwritten(nn.Module):  # the same partial add, by hand
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.head = nn.Conv2d(3, 8, 1), nn.Conv2d(3, 6, 1), nn.Conv2d(8, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a, b = self.a(x), self.b(x)
            return self.head(torch.cat([a[:, :2], a[:, 2:5] + b[:, 1:4], a[:, 5:]], 1))

    assert metrics(Handwritten()) == gradient_path_metrics(g).to_dict()


def test_adds_of_every_spelling_and_constants_pass_through() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1, self.c2, self.c3 = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 1)
            self.gamma = nn.Parameter(torch.ones(1, 4, 1, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a = self.c1(x)
            b = torch.add(a, self.gamma * self.c2(a))
            b = b.add(0.5 * self.c3(b) - 1.0)
            b += a
            return F.relu(b / 2)

    d = metrics(Net())
    assert [r["shortest_gradient_path"] for r in d["layers"]] == [1, 1, 1]
    assert [r["longest_gradient_path"] for r in d["layers"]] == [3, 2, 1]


def test_every_output_feeds_the_loss() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1, self.c2, self.c3 = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 1)

        def forward(self, x: torch.Tensor) -> dict:
            a = self.c1(x)
            b = self.c2(a)
            return {"early": a, "rest": [b, (self.c3(b), 3)], "none": None}

    g = from_module(Net(), SHAPE)
    assert len(g.outputs) == 3
    d = gradient_path_metrics(g).to_dict()
    assert [r["shortest_gradient_path"] for r in d["layers"]] == [1, 1, 1]
    assert [r["gradient_timestamps"] for r in d["layers"]] == [[1, 2, 3], [1, 2], [1]]


def test_layer_names_are_qualified_module_names_and_a_reused_module_is_a_second_layer() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stage = nn.ModuleDict({"conv": nn.Conv2d(3, 3, 3, padding=1)})

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.stage["conv"](self.stage["conv"](x))

    assert [n.name for n in from_module(Net(), SHAPE).layers()] == ["stage.conv", "stage.conv#1"]


def test_classifiers_pooling_flatten_and_mlp() -> None:
    class VGGish(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = nn.Sequential(
                nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Conv2d(8, 4, 3, padding=1)
            )
            self.avgpool = nn.AdaptiveAvgPool2d((2, 2))
            self.classifier = nn.Sequential(nn.Dropout(), nn.Linear(16, 10))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.avgpool(self.features(x))
            return self.classifier(x.view(x.size(0), -1))

    class GAP(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
            self.fc1, self.fc2 = nn.Linear(8, 10), nn.Linear(8, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = F.interpolate(F.avg_pool2d(self.conv(x), 2), scale_factor=2.0)
            return self.fc1(y.mean((2, 3))) + self.fc2(torch.flatten(nn.functional.adaptive_max_pool2d(y, 1), 1))

    mlp = nn.Sequential(nn.Linear(12, 6), nn.GELU(), nn.Linear(6, 3))
    for model, shape in ((VGGish(), SHAPE), (GAP(), SHAPE), (mlp, (1, 12))):
        g = from_module(model, shape)
        assert cost(g).params == sum(p.numel() for p in model.parameters())
        assert cost(g).flops == flops_of(model, shape)
        assert all(r.shortest_gradient_path is not None for r in gradient_path_metrics(g).layers)
    g = from_module(VGGish(), SHAPE)
    assert [n.op for n in g if n.op in ("maxpool", "flatten", "gap")] == ["maxpool", "maxpool", "flatten"]
    assert [(n.channels, n.size) for n in g.layers()] == [(8, (16, 16)), (4, (8, 8)), (10, (1, 1))]


def test_conv_bn_act_costs_like_the_module_and_the_ir() -> None:
    g = LayerGraph(3, (16, 16))
    x = g.conv(g.input_name, 8, 3, stride=2, name="stem")
    x = g.conv(x, 8, 3, groups=2, name="grouped")
    g.output(g.conv(x, 5, 1, bn=False, act=False, bias=True, name="pred"))
    with torch.device("meta"):
        model = nas.build(g)
    back = from_module(model, SHAPE)
    assert cost(back) == cost(g)
    assert [n.attrs for n in back.layers()] == [n.attrs for n in g.layers()]
    real = nas.build(g)
    assert cost(g).params == sum(p.numel() for p in real.parameters())
    assert cost(g).flops == flops_of(real)


def test_detach_stops_the_gradient() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1, self.c2 = nn.Conv2d(3, 4, 1), nn.Conv2d(4, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.c2(self.c1(x).detach())

    d = metrics(Net())
    assert [r["shortest_gradient_path"] for r in d["layers"]] == [None, 1]


def test_upsample_module_and_interpolate_to_a_size() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.c1, self.up, self.c2 = nn.Conv2d(3, 4, 3, 2, 1), nn.Upsample(scale_factor=2), nn.Conv2d(8, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            a = self.c1(x)
            b = F.interpolate(a, size=(16, 16), mode="nearest")
            return self.c2(torch.cat([self.up(a), b], 1))

    g = from_module(Net(), SHAPE)
    assert [n.size for n in g if n.op == "upsample"] == [(16, 16), (16, 16)]
    assert cost(g).flops == flops_of(Net())


# -- what it refuses --------------------------------------------------------------------------
class _Op(nn.Module):
    def __init__(self, fn) -> None:  # noqa: ANN001
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 1)
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(self.conv(x))


@pytest.mark.parametrize(
    ("fn", "words"),
    [
        (lambda y: y @ y.transpose(2, 3), "matmul of feature maps"),
        (lambda y: torch.softmax(y, 1), "softmax"),
        (lambda y: y[:, :, 1:], "indexing"),
        (lambda y: y[:, 0], "indexing"),
        (lambda y: torch.cat([y, y], 2), "dim 1"),
        (lambda y: y.reshape(1, 16, 64), "mixes the channels"),
        (lambda y: y + F.adaptive_avg_pool2d(y, (16, 1)), "broadcasts to"),
        (lambda y: y.permute(0, 2, 3, 1).sum(), "only reductions"),
    ],
    ids=["attention", "softmax", "spatial-slice", "int-index", "cat-dim2", "reshape", "broadcast", "sum"],
)
def test_unsupported_ops_name_the_op_and_the_fx_node(fn, words: str) -> None:  # noqa: ANN001
    with pytest.raises(UnsupportedOpError, match="fx node") as err:
        from_module(_Op(fn), SHAPE)
    msg = str(err.value)
    assert words in msg and "\n" not in msg


@pytest.mark.parametrize(
    "module",
    [nn.ConvTranspose2d(4, 4, 2, 2), nn.PixelShuffle(2), nn.Softmax2d()],
    ids=lambda m: type(m).__name__,
)
def test_unsupported_modules(module: nn.Module) -> None:
    with pytest.raises(UnsupportedOpError, match=f"module {type(module).__name__} at fx node '_1' \\(module '1'\\)"):
        from_module(nn.Sequential(nn.Conv2d(3, 4, 1), module), SHAPE)


def test_untraceable_models_and_bad_shapes_are_trace_errors() -> None:
    class DataDependent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x) if x.sum() > 0 else x

    class ReturnsAShape(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Size:
            return x.size()

    for model, shape, words in (
        (DataDependent(), SHAPE, "cannot trace DataDependent"),
        (nn.Conv2d(3, 4, 1), (1, 5, 16, 16), "shape propagation"),
        (nn.Conv2d(3, 4, 1), (1, 3, 16), "expected positive integers"),
        (ReturnsAShape(), SHAPE, "nothing feeds the loss"),
    ):
        with pytest.raises(TraceError, match=words):
            from_module(model, shape)
    assert issubclass(UnsupportedOpError, TraceError) and issubclass(TraceError, ValueError)


def test_optional_forward_arguments_take_their_defaults() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)

        def forward(self, x: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
            return self.conv(x)

    assert [n.name for n in from_module(Net(), SHAPE).layers()] == ["conv"]


# -- it leaves the model alone --------------------------------------------------------------------
def test_the_model_is_not_run_moved_or_changed() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
    model.add_module("flat", nn.Flatten())
    model.add_module("bn1d", nn.BatchNorm1d(4))
    model.add_module("fc", nn.Linear(4, 2))
    model.train()
    before = copy.deepcopy(model.state_dict())
    from_module(model, (1, 3, 8, 8))  # batch 1 through the training-mode BatchNorm1d would fail if it ran
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert model.training and all(p.device.type == "cpu" for p in model.parameters())


def test_analyze_returns_the_summarize_schema_with_the_modules_params() -> None:
    class PreAct(nn.Module):  # a BN that follows no conv: the IR does not count it, analyze does
        def __init__(self) -> None:
            super().__init__()
            self.bn = nn.BatchNorm2d(3)
            self.conv = nn.Conv2d(3, 4, 1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(F.relu(self.bn(x)))

    out = analyze(PreAct(), SHAPE)
    assert list(out) == ["model", "input_shape", "mode", "other_inputs", "params", "flops", *METRIC_KEYS, "layers"]
    assert out["params"] == 6 + 16 == sum(p.numel() for p in PreAct().parameters())
    assert out["flops"] == 2 * 3 * 4 * 16 * 16
    assert without_names(out)["layers"] == [
        {
            "shortest_gradient_path": 1,
            "longest_gradient_path": 1,
            "gradient_timestamps": [1],
            "units": [
                {"channels": [0, 4], "gradient_timestamps": [1], "gradient_sources": 1, "gradient_combinations": 1}
            ],
            "channels": 4,
            "flops": 2 * 3 * 4 * 16 * 16,
        }
    ]
