"""``nas analyze`` on the patterns of the models people use (issue 16): non-square / dilated / grouped
convs at any batch, SE and spatial-attention gates, permutes and token reshapes, channel shuffle,
GroupNorm/LayerNorm, YOLOv9's list-chunk ELAN (GELAN), YOLOv7's IDetect 5-D view, shape branches, two
inputs. Every traced net's FLOPs are checked against ``torch.utils.flop_counter.FlopCounterMode`` on
the same input, batch included; metrics against hand-built LayerGraphs."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import nas
from nas.cli import main
from nas.core.cost import cost
from nas.core.fx import TraceError, UnsupportedOpError, analyze, from_module
from nas.core.ir import LayerGraph
from nas.core.metrics import gradient_path_metrics


def flops_of(model: nn.Module, shape: tuple[int, ...]) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(shape))
    return counter.get_total_flops()


def metrics(model: nn.Module, shape: tuple[int, ...]) -> dict:
    return gradient_path_metrics(from_module(model, shape)).to_dict()


def without_names(d: dict) -> dict:
    return {**d, "layers": [{k: v for k, v in r.items() if k != "name"} for r in d["layers"]]}


def assert_exact_flops(model: nn.Module, shape: tuple[int, ...]) -> None:
    assert cost(from_module(model, shape)).flops == flops_of(model, shape)
    assert analyze(model, shape)["flops"] == flops_of(model, shape)


# -- the nets ---------------------------------------------------------------------------------
class InceptionFactorized(nn.Module):
    """Inception-v3's 1×7 + 7×1 pair, a dilated conv, a grouped conv with stride (2, 1), and a head."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 8, (1, 7), padding=(0, 3))
        self.b = nn.Conv2d(8, 8, (7, 1), padding=(3, 0))
        self.dil = nn.Conv2d(8, 8, 3, padding=2, dilation=2)
        self.grp = nn.Conv2d(8, 16, (3, 5), stride=(2, 1), padding=(1, 2), groups=4)
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.grp(self.dil(self.b(self.a(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(y, 1), 1))


class SqueezeExcite(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc1 = nn.Conv2d(c, c // 4, 1)
        self.fc2 = nn.Conv2d(c // 4, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True)))))


class MBConvSE(nn.Module):
    """EfficientNet / MobileNetV3: expand, depthwise, SE gate, project, residual."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.expand = nn.Conv2d(c, 4 * c, 1)
        self.dw = nn.Conv2d(4 * c, 4 * c, 3, padding=1, groups=4 * c)
        self.se = SqueezeExcite(4 * c)
        self.project = nn.Conv2d(4 * c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.project(self.se(F.silu(self.dw(F.silu(self.expand(x))))))


class SELinear(nn.Module):
    """timm/torchvision style SE with Linear layers and a view to N×C×1×1."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, c, 3, padding=1)
        self.fc1 = nn.Linear(c, c // 2)
        self.fc2 = nn.Linear(c // 2, c)
        self.head = nn.Conv2d(c, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        b, c, _, _ = y.shape
        s = torch.sigmoid(self.fc2(F.relu(self.fc1(y.mean((2, 3)))))).view(b, c, 1, 1)
        return self.head(y * s)


class CBAMSpatial(nn.Module):
    """CBAM's spatial attention: mean and max over channels, a 7×7 conv, a 1-channel gate."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.att = nn.Conv2d(2, 1, 7, padding=3)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        a = torch.cat([y.mean(1, keepdim=True), y.amax(1, keepdim=True)], 1)
        return self.head(y * torch.sigmoid(self.att(a)))


class ConvNeXtBlock(nn.Module):
    """ConvNeXt: depthwise 7×7, permute to channels-last, LayerNorm, Linear MLP, layer scale, permute back."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c)
        self.pw1 = nn.Linear(c, 4 * c)
        self.pw2 = nn.Linear(4 * c, c)
        self.gamma = nn.Parameter(torch.ones(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.dw(x).permute(0, 2, 3, 1)
        y = self.gamma * self.pw2(F.gelu(self.pw1(self.norm(y))))
        return x + y.permute(0, 3, 1, 2)


class ConvNeXtTiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 4, stride=4)
        self.blocks = nn.Sequential(ConvNeXtBlock(), ConvNeXtBlock())
        self.head = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.stem(x)).mean((2, 3)))


class TokenMLP(nn.Module):
    """ViT-style tokens without attention: patch embed, flatten(2).transpose(1, 2), LayerNorm, MLP, mean."""

    def __init__(self, d: int = 16) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, d, 4, stride=4)
        self.norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, 2 * d)
        self.fc2 = nn.Linear(2 * d, d)
        self.head = nn.Linear(d, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.patch(x).flatten(2).transpose(1, 2)  # (N, T, D)
        t = t + self.fc2(F.gelu(self.fc1(self.norm(t))))
        return self.head(t.mean(1))


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.size()
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).contiguous().view(b, c, h, w)


class ShuffleUnit(nn.Module):
    """ShuffleNetV2's unit: chunk, a branch, cat, channel shuffle; then a second unit chunks again."""

    def __init__(self, c: int = 8) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, c, 1)
        self.branch = nn.Conv2d(c // 2, c // 2, 3, padding=1)
        self.branch2 = nn.Conv2d(c // 2, c // 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        a, b = y.chunk(2, 1)
        y = channel_shuffle(torch.cat([a, self.branch(b)], 1), 2)
        a, b = y.chunk(2, 1)
        return torch.cat([a, self.branch2(b)], 1)


class GNResNet(nn.Module):
    def __init__(self, norm: bool = True) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1)
        self.gn = nn.GroupNorm(2, 8) if norm else nn.Identity()
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.ln = nn.LayerNorm([8, 16, 16]) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        return self.ln(y + self.conv2(F.relu(self.gn(self.conv1(y)))))


class RepNCSPELAN4(nn.Module):
    """YOLOv9's GELAN block as its repository writes it: ``list(cv1(x).chunk(2, 1))``, then a loop that
    extends the list, then one concat (here with plain convs for the RepNCSP parts)."""

    def __init__(self, c1: int = 16, c2: int = 16, c3: int = 16, c4: int = 8) -> None:
        super().__init__()
        self.c = c3 // 2
        self.cv1 = nn.Conv2d(c1, c3, 1)
        self.cv2 = nn.Sequential(nn.Conv2d(c3 // 2, c4, 3, padding=1), nn.Conv2d(c4, c4, 3, padding=1))
        self.cv3 = nn.Sequential(nn.Conv2d(c4, c4, 3, padding=1), nn.Conv2d(c4, c4, 3, padding=1))
        self.cv4 = nn.Conv2d(c3 + 2 * c4, c2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = list(self.cv1(x).chunk(2, 1))
        y.extend(m(y[-1]) for m in [self.cv2, self.cv3])
        return self.cv4(torch.cat(y, 1))


class RepNCSPELAN4Sliced(RepNCSPELAN4):
    """The same block written without iteration (what ``symbolic_trace`` could already trace)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.cv1(x)
        a, b = y[:, : self.c], y[:, self.c :]
        c = self.cv2(b)
        d = self.cv3(c)
        return self.cv4(torch.cat([a, b, c, d], 1))


class GELAN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.elan = nn.Sequential(RepNCSPELAN4(), RepNCSPELAN4())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.elan(self.stem(x))


class IDetect(nn.Module):
    """YOLOv7's IDetect head: a prediction conv per level, viewed to (bs, na, no, ny, nx) and permuted."""

    def __init__(self, na: int = 3, nc: int = 2) -> None:
        super().__init__()
        self.na, self.no = na, nc + 5
        self.stem = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.down = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.m = nn.ModuleList(nn.Conv2d(8, na * self.no, 1) for _ in range(2))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        p3 = self.stem(x)
        out = []
        for i, p in enumerate([p3, self.down(p3)]):
            y = self.m[i](p)
            bs, _, ny, nx = y.shape
            out.append(y.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous())
        return out


class ShapeBranch(nn.Module):
    """Python branching on ``x.shape`` (resolved at the traced input shape)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.big = nn.Conv2d(8, 8, 3, stride=2, padding=1)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.stem(x)
        if y.shape[-1] > 16:
            y = self.big(y)
        return self.head(y)


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(3, 4, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.a(x) * mask.mean()


NETS = {
    "inception-factorized": (InceptionFactorized, (2, 3, 16, 16)),
    "mbconv-se": (lambda: nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), MBConvSE(), MBConvSE()), (2, 3, 16, 16)),
    "se-linear": (SELinear, (3, 3, 16, 16)),
    "cbam-spatial": (CBAMSpatial, (2, 3, 16, 16)),
    "convnext": (ConvNeXtTiny, (2, 3, 32, 32)),
    "token-mlp": (TokenMLP, (2, 3, 32, 32)),
    "shufflenet-unit": (ShuffleUnit, (2, 3, 16, 16)),
    "groupnorm-resnet": (GNResNet, (2, 3, 16, 16)),
    "gelan": (GELAN, (2, 3, 32, 32)),
    "idetect": (IDetect, (2, 3, 32, 32)),
    "shape-branch": (ShapeBranch, (2, 3, 32, 32)),
    "two-inputs": (TwoInputs, (2, 3, 16, 16)),
}


@pytest.mark.parametrize("name", list(NETS))
def test_every_pattern_traces_with_exact_flops_batch_included(name: str) -> None:
    make, shape = NETS[name]
    model = make()
    if name == "two-inputs":
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.zeros(shape), torch.zeros(shape))
        assert cost(from_module(model, shape)).flops == counter.get_total_flops()
        return
    assert_exact_flops(model, shape)


def test_flops_scale_with_the_batch_and_follow_the_kernel_shape() -> None:
    model = InceptionFactorized()
    one, four = cost(from_module(model, (1, 3, 16, 16))).flops, cost(from_module(model, (4, 3, 16, 16))).flops
    assert four == 4 * one == flops_of(model, (4, 3, 16, 16))
    pair = nn.Sequential(nn.Conv2d(8, 8, (1, 7), padding=(0, 3)), nn.Conv2d(8, 8, (7, 1), padding=(3, 0)))
    assert cost(from_module(pair, (1, 8, 17, 17))).flops == 2 * (2 * 8 * 8 * 7 * 17 * 17)


# -- gates are merges -------------------------------------------------------------------------
def test_se_gate_is_a_merge_and_both_operands_get_the_gradient() -> None:
    """x * sigmoid(fc2(relu(fc1(pool(x))))): the same metrics as the IR with an explicit ``mul``."""
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), SqueezeExcite(8), nn.Conv2d(8, 4, 1))
    g = LayerGraph(3, (16, 16))
    x = g.conv(g.input_name, 8, 3, name="0")
    s = g.conv(g.conv(g.maxpool(x, 3, 16), 2, name="1.fc1"), 8, name="1.fc2")
    g.output(g.conv(g.mul(x, s), 4, name="2"))
    got = metrics(model, (1, 3, 16, 16))
    assert got == gradient_path_metrics(g).to_dict()
    by = {r["name"]: r for r in got["layers"]}
    # the stem is reached directly (through the gated product) and through the SE branch
    assert by["0"]["gradient_timestamps"] == [2, 4] and by["1.fc1"]["shortest_gradient_path"] == 3


def test_a_one_channel_gate_gives_its_gradient_to_every_channel() -> None:
    by = {r["name"]: r for r in metrics(CBAMSpatial(), (1, 3, 16, 16))["layers"]}
    assert by["att"]["gradient_timestamps"] == [2]
    assert by["stem"]["gradient_timestamps"] == [2, 3] and len(by["stem"]["units"]) == 1


def test_an_ir_with_gates_builds_and_traces_back_to_the_same_metrics() -> None:
    g = LayerGraph(3, (4, 4))
    x = g.conv(g.input_name, 8, name="stem")
    s = g.conv(g.maxpool(x, 3, 4), 8, name="fc")  # 1×1
    y = g.mul(x, s)
    y = g.mul(y, g.conv(g.reduce(y, "max"), 1, k=3, name="att"))
    g.output(g.conv(y, 4, name="head"))
    with torch.device("meta"):
        model = nas.build(g)
    back = from_module(model, (1, 3, 4, 4))
    assert without_names(gradient_path_metrics(back).to_dict()) == without_names(gradient_path_metrics(g).to_dict())
    real = nas.build(g).eval()  # BatchNorm on the 1×1 gate needs eval mode at batch 1
    assert cost(g).flops == flops_of(real, (1, 3, 4, 4)) == cost(back).flops


# -- layouts and norms ------------------------------------------------------------------------
def test_norms_keep_channel_identity() -> None:
    assert metrics(GNResNet(norm=True), (1, 3, 16, 16)) == metrics(GNResNet(norm=False), (1, 3, 16, 16))


def test_channels_last_linear_is_a_pointwise_layer() -> None:
    g = from_module(ConvNeXtTiny(), (1, 3, 32, 32))
    pw = g.node("blocks.0.pw1")
    assert pw.op == "conv" and pw.attrs.get("linear") and pw.size == (8, 8) and pw.channels == 32
    m = gradient_path_metrics(g)
    # residual blocks: the stem's shortest path stays at 2 (head + nothing else), as for a ResNet
    assert m.layer("stem").shortest_gradient_path == 2


def test_channel_shuffle_is_the_permutation_of_channels() -> None:
    """view(N, 2, C/2, H, W).transpose(1, 2).view(N, C, H, W) of [a | branch(b)] interleaves them:
    channel i comes from channel [0, 4, 1, 5, 2, 6, 3, 7][i]. The IR built by hand with that order."""
    got = metrics(ShuffleUnit(), (1, 3, 16, 16))
    g = LayerGraph(3, (16, 16))
    y = g.conv(g.input_name, 8, 1, name="stem")
    cat = g.concat([g.split(y, 0, 4), g.conv(g.split(y, 4, 8), 4, 3, name="branch")])
    perm = [0, 4, 1, 5, 2, 6, 3, 7]
    chans = [g.split(cat, p, p + 1) for p in perm]
    a, b = g.concat(chans[:4]), g.concat(chans[4:])
    g.output(g.concat([a, g.conv(b, 4, 1, name="branch2")]))
    assert got == gradient_path_metrics(g).to_dict()
    x = torch.arange(8.0).view(1, 8, 1, 1)
    assert channel_shuffle(x, 2).flatten().tolist() == perm  # the brute-force order


def test_channel_shuffle_module_is_the_same_permutation() -> None:
    class WithModule(ShuffleUnit):
        def __init__(self) -> None:
            super().__init__()
            self.shuffle = nn.ChannelShuffle(2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.stem(x)
            a, b = y.chunk(2, 1)
            a, b = self.shuffle(torch.cat([a, self.branch(b)], 1)).chunk(2, 1)
            return torch.cat([a, self.branch2(b)], 1)

    assert metrics(WithModule(), (1, 3, 16, 16)) == metrics(ShuffleUnit(), (1, 3, 16, 16))
    x = torch.arange(8.0).view(1, 8, 1, 1)
    assert nn.ChannelShuffle(2)(x).flatten().tolist() == channel_shuffle(x, 2).flatten().tolist()


def test_idetect_5d_view_keeps_every_channel_feeding_the_loss() -> None:
    m = metrics(IDetect(), (1, 3, 32, 32))
    by = {r["name"]: r for r in m["layers"]}
    assert by["m.0"]["gradient_timestamps"] == [1] and by["stem"]["gradient_timestamps"] == [2, 3]


def test_token_mlp_tokens_are_followed() -> None:
    m = gradient_path_metrics(from_module(TokenMLP(), (1, 3, 32, 32)))
    assert m.layer("patch").gradient_timestamps == (2, 4)
    assert m.layer("fc1").shortest_gradient_path == 3


# -- capture beyond symbolic_trace -------------------------------------------------------------
def test_gelan_list_chunk_loop_traces_like_the_sliced_block() -> None:
    with pytest.raises(torch.fx.proxy.TraceError):
        torch.fx.symbolic_trace(RepNCSPELAN4())
    sliced = RepNCSPELAN4Sliced()
    a, b = metrics(RepNCSPELAN4(), (1, 16, 16, 16)), metrics(sliced, (1, 16, 16, 16))
    assert a == b
    assert a["max_shortest_gradient_path"] == 3  # ELAN: cv1 -> cv4 only, whatever the stack


def test_shape_branches_resolve_at_the_traced_shape() -> None:
    assert [n.name for n in from_module(ShapeBranch(), (1, 3, 32, 32)).layers()] == ["stem", "big", "head"]
    assert [n.name for n in from_module(ShapeBranch(), (1, 3, 16, 16)).layers()] == ["stem", "head"]


def test_a_second_input_is_stated_not_analysed() -> None:
    out = analyze(TwoInputs(), (1, 3, 16, 16))
    assert out["other_inputs"] == ["mask"] and [r["name"] for r in out["layers"]] == ["a"]
    assert out["input_shape"] == [1, 3, 16, 16] and out["mode"] == "train" and out["model"] == "TwoInputs"


def test_value_dependent_branches_are_refused_naming_the_module() -> None:
    class Inner(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x if x.sum() > 0 else -x

    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Sequential(Inner()))
    with pytest.raises(TraceError, match=r"in 1\.0 \(Inner\): Python control flow depends on the values"):
        from_module(model, (1, 3, 8, 8))


# -- errors name the module ---------------------------------------------------------------------
class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.qkv = nn.Linear(8, 24)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, -1)
        return (q @ k.transpose(1, 2)).softmax(-1) @ v


def test_unsupported_ops_name_the_module_path_and_class() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.patch = nn.Conv2d(3, 8, 4, 4)
            self.blocks = nn.Sequential(Attention())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.blocks(self.patch(x).flatten(2).transpose(1, 2))

    with pytest.raises(
        UnsupportedOpError, match=r"matmul of feature maps at fx node 'matmul' in blocks\.0 \(Attention\)"
    ):
        from_module(Net(), (1, 3, 16, 16))
    with pytest.raises(TraceError, match=r"shape propagation .* failed in 1 \(Conv2d\)"):
        from_module(nn.Sequential(nn.Conv2d(3, 4, 1), nn.Conv2d(5, 4, 1)), (1, 3, 8, 8))


# -- the CLI --------------------------------------------------------------------------------------
def test_cli_factory_imports_its_neighbours_and_compares_models(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "blocks_here.py").write_text("from torch import nn\nWIDTH = 8\n")
    (tmp_path / "zoo.py").write_text(
        textwrap.dedent(
            """
            from torch import nn
            from blocks_here import WIDTH

            def small():
                return nn.Sequential(nn.Conv2d(3, WIDTH, 3, padding=1), nn.ReLU(), nn.Conv2d(WIDTH, 4, 1))

            def deeper():
                return nn.Sequential(*[nn.Conv2d(3 if i == 0 else 8, 8, 3, padding=1) for i in range(4)])
            """
        )
    )
    assert main(["analyze", f"{tmp_path / 'zoo.py'}:small", "--input-shape", "2,3,16,16", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["input_shape"] == [2, 3, 16, 16] and d["flops"] == 2 * (2 * 27 * 8 * 256 + 2 * 8 * 4 * 256)
    assert [r["channels"] for r in d["layers"]] == [8, 4] and d["layers"][0]["flops"] == 2 * 2 * 27 * 8 * 256
    assert main(["analyze", f"{tmp_path / 'zoo.py'}:small", f"{tmp_path / 'zoo.py'}:deeper"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[:2] == ["model", "params"]
    assert lines[2].split()[0] == "zoo.py:small" and lines[3].split()[0] == "zoo.py:deeper"
    assert lines[3].split()[3] == "4"  # the plain chain's max shortest gradient path = its depth
    assert main(["analyze", f"{tmp_path / 'zoo.py'}:small", f"{tmp_path / 'zoo.py'}:deeper", "--json"]) == 0
    both = json.loads(capsys.readouterr().out)
    assert [d["model"] for d in both] == ["zoo.py:small", "zoo.py:deeper"]
    assert main(["analyze", f"{tmp_path / 'zoo.py'}:deeper"]) == 0
    out = capsys.readouterr().out
    assert "0 *" in out and "stage" in out  # the first conv of a plain chain is at the max SGP


@pytest.mark.slow
def test_export_and_make_fx_capture_what_symbolic_trace_cannot() -> None:
    """The measured alternatives (nas/core/fx/trace.py): both capture GELAN and the shape branch, but as ATen
    graphs without module leaves (so the builder could not name or fold layers from them)."""
    from torch.fx.experimental.proxy_tensor import make_fx

    for model, shape in ((RepNCSPELAN4(), (1, 16, 16, 16)), (ShapeBranch(), (1, 3, 32, 32))):
        gm = make_fx(model)(torch.zeros(shape))
        targets = {str(n.target) for n in gm.graph.nodes if n.op == "call_function"}
        assert any("convolution" in t for t in targets)
        assert not any(n.op == "call_module" for n in gm.graph.nodes)
        ep = torch.export.export(model, (torch.zeros(shape),))
        assert not any(n.op == "call_module" for n in ep.graph.nodes)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name", ["mobilenet_v3_large", "efficientnet_b0", "convnext_tiny", "shufflenet_v2", "gelan_c_backbone"]
)
def test_zoo_models_trace_with_exact_flops(name: str) -> None:
    """A handful of the README zoo (benchmarks/zoo.py, real layouts), on meta tensors."""
    from benchmarks.zoo import ZOO

    make, shape = ZOO[name]
    with torch.device("meta"):
        model = make().eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.empty(shape, device="meta"))
    assert analyze(model, shape)["flops"] == counter.get_total_flops()


@pytest.mark.slow
def test_zoo_vit_is_refused_naming_its_attention() -> None:
    from benchmarks.zoo import ZOO

    with torch.device("meta"):
        model = ZOO["vit_tiny"][0]()
    with pytest.raises(UnsupportedOpError, match=r"in blocks\.0\.attn \(Attention\)"):
        from_module(model, ZOO["vit_tiny"][1])
