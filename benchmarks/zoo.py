"""A zoo of real architectures, re-implemented in plain torch at their published layout (timm needs
torchvision, which this project must not install; YOLOv7/YOLOv9 cannot be downloaded at run time).
Each factory builds the model the way its own repository writes the forward: SE gates, channel
shuffles, channels-last LayerNorm, ``list(x.chunk(2, 1))`` loops, 5-D detection views.
``ZOO`` maps a name to (factory, input shape). Widths and depths follow the papers; no weights."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


def cbr(c1: int, c2: int, k: int | tuple[int, int] = 1, s: int = 1, g: int = 1, d: int = 1, act: bool = True):
    """Conv-BN-ReLU with 'same' padding for odd kernels (any kh×kw, dilation)."""
    kh, kw = (k, k) if isinstance(k, int) else k
    conv = nn.Conv2d(c1, c2, (kh, kw), s, (d * (kh // 2), d * (kw // 2)), dilation=d, groups=g, bias=False)
    return nn.Sequential(conv, nn.BatchNorm2d(c2), nn.ReLU(inplace=True) if act else nn.Identity())


class Classifier(nn.Module):
    def __init__(self, features: nn.Module, c: int, classes: int = 1000) -> None:
        super().__init__()
        self.features = features
        self.fc = nn.Linear(c, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(self.features(x), 1), 1))


# -- ResNet family ------------------------------------------------------------------------------
class Basic(nn.Module):
    def __init__(self, c1: int, c2: int, s: int) -> None:
        super().__init__()
        self.conv1, self.conv2 = cbr(c1, c2, 3, s), cbr(c2, c2, 3, act=False)
        self.down = cbr(c1, c2, 1, s, act=False) if s != 1 or c1 != c2 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.down(x) + self.conv2(self.conv1(x)))


class Bottleneck(nn.Module):
    def __init__(self, c1: int, c2: int, s: int, groups: int = 1, width: int | None = None, se: bool = False) -> None:
        super().__init__()
        w = width or c2 // 4
        self.conv1, self.conv2, self.conv3 = cbr(c1, w, 1), cbr(w, w, 3, s, g=groups), cbr(w, c2, 1, act=False)
        self.se = SE(w, max(1, c1 // 16)) if se else nn.Identity()
        self.down = cbr(c1, c2, 1, s, act=False) if s != 1 or c1 != c2 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.down(x) + self.conv3(self.se(self.conv2(self.conv1(x)))))


def resnet(block: str, depths: list[int], widths: list[int], **kw: object) -> nn.Module:
    layers: list[nn.Module] = [cbr(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)]
    c = 64
    for i, (n, w) in enumerate(zip(depths, widths, strict=True)):
        for j in range(n):
            s = 2 if j == 0 and i > 0 else 1
            layers.append(Basic(c, w, s) if block == "basic" else Bottleneck(c, w, s, **kw))
            c = w
    return Classifier(nn.Sequential(*layers), c)


class SE(nn.Module):
    """Squeeze-excitation, torchvision style (``x * sigmoid(fc2(act(fc1(pool(x)))))``)."""

    def __init__(self, c: int, r: int, gate: Callable = torch.sigmoid) -> None:
        super().__init__()
        self.fc1, self.fc2, self.gate = nn.Conv2d(c, r, 1), nn.Conv2d(r, c, 1), gate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))


# -- mobile nets ----------------------------------------------------------------------------------
class InvertedResidual(nn.Module):
    def __init__(self, c1: int, c2: int, k: int, s: int, e: float, se: bool = False, hs: bool = False) -> None:
        super().__init__()
        h = int(round(c1 * e))
        act = nn.Hardswish() if hs else nn.SiLU()
        self.expand = nn.Sequential(nn.Conv2d(c1, h, 1, bias=False), nn.BatchNorm2d(h), act) if h != c1 else None
        self.dw = nn.Sequential(nn.Conv2d(h, h, k, s, k // 2, groups=h, bias=False), nn.BatchNorm2d(h), act)
        self.se = SE(h, max(8, c1 // 4), F.hardsigmoid if hs else torch.sigmoid) if se else nn.Identity()
        self.project = nn.Sequential(nn.Conv2d(h, c2, 1, bias=False), nn.BatchNorm2d(c2))
        self.res = s == 1 and c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.se(self.dw(y)))
        return x + y if self.res else y


def mobilenet(cfg: list[tuple[int, int, int, float, int, bool, bool]], stem: int, last: int) -> nn.Module:
    """``cfg`` rows: (k, c, n, expansion, stride, se, hardswish)."""
    layers: list[nn.Module] = [cbr(3, stem, 3, 2)]
    c = stem
    for k, c2, n, e, s, se, hs in cfg:
        for j in range(n):
            layers.append(InvertedResidual(c, c2, k, s if j == 0 else 1, e, se, hs))
            c = c2
    layers.append(cbr(c, last, 1))
    return Classifier(nn.Sequential(*layers), last)


def mobilenet_v2() -> nn.Module:
    t = [(3, 16, 1, 1, 1), (3, 24, 2, 6, 2), (3, 32, 3, 6, 2), (3, 64, 4, 6, 2), (3, 96, 3, 6, 1)]
    t += [(3, 160, 3, 6, 2), (3, 320, 1, 6, 1)]
    return mobilenet([(*r[:4], r[4], False, False) for r in t], 32, 1280)


def mobilenet_v3_large() -> nn.Module:
    rows = [(3, 16, 1, 1, 1, False, False), (3, 24, 1, 4, 2, False, False), (3, 24, 1, 3, 1, False, False)]
    rows += [(5, 40, 3, 3, 2, True, False), (3, 80, 1, 6, 2, False, True), (3, 80, 3, 2.5, 1, False, True)]
    rows += [(3, 112, 2, 6, 1, True, True), (5, 160, 3, 6, 2, True, True)]
    return mobilenet(rows, 16, 960)


def efficientnet_b0() -> nn.Module:
    t = [(3, 16, 1, 1, 1), (3, 24, 2, 6, 2), (5, 40, 2, 6, 2), (3, 80, 3, 6, 2), (5, 112, 3, 6, 1)]
    t += [(5, 192, 4, 6, 2), (3, 320, 1, 6, 1)]
    return mobilenet([(*r[:4], r[4], True, False) for r in t], 32, 1280)


# -- dense / one-shot aggregation / CSP ----------------------------------------------------------
class DenseBlock(nn.Module):
    def __init__(self, c: int, n: int, growth: int = 32) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(
                nn.BatchNorm2d(c + i * growth),
                nn.ReLU(),
                nn.Conv2d(c + i * growth, 4 * growth, 1),
                nn.BatchNorm2d(4 * growth),
                nn.ReLU(),
                nn.Conv2d(4 * growth, growth, 3, padding=1),
            )
            for i in range(n)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for layer in self.layers:
            feats.append(layer(torch.cat(feats, 1)))
        return torch.cat(feats, 1)


def densenet121() -> nn.Module:
    layers: list[nn.Module] = [cbr(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)]
    c = 64
    for i, n in enumerate([6, 12, 24, 16]):
        layers.append(DenseBlock(c, n))
        c += 32 * n
        if i < 3:
            layers += [nn.BatchNorm2d(c), nn.Conv2d(c, c // 2, 1), nn.AvgPool2d(2)]
            c //= 2
    return Classifier(nn.Sequential(*layers), c)


class ESE(nn.Module):
    """VoVNetV2's effective SE: one FC, hard-sigmoid gate."""

    def __init__(self, c: int) -> None:
        super().__init__()
        self.fc = nn.Conv2d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * F.hardsigmoid(self.fc(x.mean((2, 3), keepdim=True)))


class OSA(nn.Module):
    def __init__(self, c1: int, mid: int, c2: int, n: int = 5) -> None:
        super().__init__()
        self.layers = nn.ModuleList(cbr(c1 if i == 0 else mid, mid, 3) for i in range(n))
        self.concat = cbr(c1 + n * mid, c2, 1)
        self.ese = ESE(c2)
        self.res = c1 == c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, y = [x], x
        for layer in self.layers:
            y = layer(y)
            out.append(y)
        y = self.ese(self.concat(torch.cat(out, 1)))
        return x + y if self.res else y


def ese_vovnet19() -> nn.Module:
    layers: list[nn.Module] = [cbr(3, 64, 3, 2), cbr(64, 64, 3), cbr(64, 128, 3, 2)]
    c = 128
    for i, (mid, c2) in enumerate([(64, 112), (80, 256), (96, 384), (112, 512)]):
        if i > 0:
            layers.append(nn.MaxPool2d(3, 2, ceil_mode=True))
        layers.append(OSA(c, mid, c2, 3))
        c = c2
    return Classifier(nn.Sequential(*layers), c)


class CSPStage(nn.Module):
    """CSPDarknet stage: down, split by two 1×1 convs, residual blocks, transition, concat, fuse."""

    def __init__(self, c1: int, c2: int, n: int) -> None:
        super().__init__()
        self.down = cbr(c1, c2, 3, 2)
        self.cv1, self.cv2 = cbr(c2, c2 // 2), cbr(c2, c2 // 2)
        self.m = nn.Sequential(*(Basic(c2 // 2, c2 // 2, 1) for _ in range(n)))
        self.cv3 = cbr(c2 // 2, c2 // 2)
        self.fuse = cbr(c2, c2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.down(x)
        return self.fuse(torch.cat([self.cv3(self.m(self.cv1(x))), self.cv2(x)], 1))


def cspdarknet53() -> nn.Module:
    layers: list[nn.Module] = [cbr(3, 32, 3)]
    c = 32
    for c2, n in [(64, 1), (128, 2), (256, 8), (512, 8), (1024, 4)]:
        layers.append(CSPStage(c, c2, n))
        c = c2
    return Classifier(nn.Sequential(*layers), c)


# -- inception / squeeze / vgg / dilation / res2net ----------------------------------------------
class InceptionC(nn.Module):
    """Inception-v3's factorised 7×7 module (1×7 / 7×1 pairs)."""

    def __init__(self, c: int, c7: int) -> None:
        super().__init__()
        self.b1 = cbr(c, 192)
        self.b7 = nn.Sequential(cbr(c, c7), cbr(c7, c7, (1, 7)), cbr(c7, 192, (7, 1)))
        self.b77 = nn.Sequential(
            cbr(c, c7), cbr(c7, c7, (7, 1)), cbr(c7, c7, (1, 7)), cbr(c7, c7, (7, 1)), cbr(c7, 192, (1, 7))
        )
        self.pool = cbr(c, 192)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.pool(F.avg_pool2d(x, 3, 1, 1))
        return torch.cat([self.b1(x), self.b7(x), self.b77(x), p], 1)


def inception_v3_c() -> nn.Module:
    return Classifier(nn.Sequential(cbr(3, 768, 3, 2), InceptionC(768, 128), InceptionC(768, 160)), 768)


class Fire(nn.Module):
    def __init__(self, c1: int, s: int, e: int) -> None:
        super().__init__()
        self.squeeze, self.e1, self.e3 = nn.Conv2d(c1, s, 1), nn.Conv2d(s, e, 1), nn.Conv2d(s, e, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.squeeze(x))
        return torch.cat([F.relu(self.e1(y)), F.relu(self.e3(y))], 1)


def squeezenet() -> nn.Module:
    f = [Fire(96, 16, 64), Fire(128, 16, 64), Fire(128, 32, 128), nn.MaxPool2d(3, 2, ceil_mode=True)]
    f += [Fire(256, 32, 128), Fire(256, 48, 192), Fire(384, 48, 192), Fire(384, 64, 256)]
    return Classifier(nn.Sequential(nn.Conv2d(3, 96, 7, 2), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True), *f), 512)


def vgg11() -> nn.Module:
    layers: list[nn.Module] = []
    c = 3
    for v in [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"]:
        if v == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(c, v, 3, padding=1), nn.ReLU()]
            c = v
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(512 * 2 * 2, 4096), nn.ReLU(), nn.Linear(4096, 1000))


class ASPP(nn.Module):
    """DeepLabV3's atrous spatial pyramid pooling with an image-pool branch upsampled back."""

    def __init__(self, c: int, out: int = 256) -> None:
        super().__init__()
        self.branches = nn.ModuleList([cbr(c, out)] + [cbr(c, out, 3, d=d) for d in (6, 12, 18)])
        self.pool = cbr(c, out)
        self.project = cbr(5 * out, out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = F.interpolate(self.pool(F.adaptive_avg_pool2d(x, 1)), size=x.shape[-2:], mode="nearest")
        return self.project(torch.cat([b(x) for b in self.branches] + [p], 1))


def deeplabv3_head() -> nn.Module:
    return nn.Sequential(cbr(3, 64, 3, 2), cbr(64, 256, 3, 2), ASPP(256), nn.Conv2d(256, 21, 1))


class Res2Block(nn.Module):
    """Res2Net: the 1×1 output split in ``scale`` pieces, each 3×3 fed the previous piece's output."""

    def __init__(self, c: int, width: int = 26, scale: int = 4) -> None:
        super().__init__()
        self.width, self.scale = width, scale
        self.conv1 = cbr(c, width * scale)
        self.convs = nn.ModuleList(cbr(width, width, 3) for _ in range(scale - 1))
        self.conv3 = cbr(width * scale, c, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spx = torch.split(self.conv1(x), self.width, 1)
        out, sp = [], None
        for i, conv in enumerate(self.convs):
            sp = spx[i] if i == 0 else sp + spx[i]
            sp = conv(sp)
            out.append(sp)
        out.append(spx[self.scale - 1])
        return F.relu(x + self.conv3(torch.cat(out, 1)))


def res2net_stage() -> nn.Module:
    return Classifier(nn.Sequential(cbr(3, 256, 3, 2), Res2Block(256), Res2Block(256), Res2Block(256)), 256)


# -- channels-last / shuffle / norms ----------------------------------------------------------------
class ConvNeXtBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(c, c, 7, padding=3, groups=c)
        self.norm = nn.LayerNorm(c, eps=1e-6)
        self.pwconv1, self.pwconv2 = nn.Linear(c, 4 * c), nn.Linear(4 * c, c)
        self.gamma = nn.Parameter(1e-6 * torch.ones(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.dwconv(x).permute(0, 2, 3, 1))
        y = self.gamma * self.pwconv2(F.gelu(self.pwconv1(y)))
        return x + y.permute(0, 3, 1, 2)


class LayerNorm2d(nn.LayerNorm):
    """timm's channels-first LayerNorm: permute, normalise, permute back."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps).permute(
            0, 3, 1, 2
        )


def convnext_tiny() -> nn.Module:
    dims, depths = [96, 192, 384, 768], [3, 3, 9, 3]
    layers: list[nn.Module] = [nn.Conv2d(3, 96, 4, 4), LayerNorm2d(96)]
    for i, (d, n) in enumerate(zip(dims, depths, strict=True)):
        if i > 0:
            layers += [LayerNorm2d(dims[i - 1]), nn.Conv2d(dims[i - 1], d, 2, 2)]
        layers += [ConvNeXtBlock(d) for _ in range(n)]
    return Classifier(nn.Sequential(*layers), 768)


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    b, c, h, w = x.size()
    return x.view(b, groups, c // groups, h, w).transpose(1, 2).contiguous().view(b, c, h, w)


class ShuffleV2(nn.Module):
    def __init__(self, c1: int, c2: int, s: int) -> None:
        super().__init__()
        b = c2 // 2
        self.s = s
        if s > 1:
            self.branch1 = nn.Sequential(cbr(c1, c1, 3, s, g=c1, act=False), cbr(c1, b))
        self.branch2 = nn.Sequential(cbr(c1 if s > 1 else b, b), cbr(b, b, 3, s, g=b, act=False), cbr(b, b))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.s == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


def shufflenet_v2() -> nn.Module:
    layers: list[nn.Module] = [cbr(3, 24, 3, 2), nn.MaxPool2d(3, 2, 1)]
    c = 24
    for c2, n in [(116, 4), (232, 8), (464, 4)]:
        for j in range(n):
            layers.append(ShuffleV2(c, c2, 2 if j == 0 else 1))
            c = c2
    layers.append(cbr(c, 1024))
    return Classifier(nn.Sequential(*layers), 1024)


class GNBottleneck(Bottleneck):
    """ResNet bottleneck with GroupNorm (detectron2 / BiT style)."""

    def __init__(self, c1: int, c2: int, s: int) -> None:
        super().__init__(c1, c2, s)
        for seq in (self.conv1, self.conv2, self.conv3):
            seq[1] = nn.GroupNorm(32, seq[1].num_features)


def resnet50_gn() -> nn.Module:
    layers: list[nn.Module] = [cbr(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)]
    c = 64
    for i, (n, w) in enumerate(zip([3, 4, 6, 3], [256, 512, 1024, 2048], strict=True)):
        for j in range(n):
            layers.append(GNBottleneck(c, w, 2 if j == 0 and i > 0 else 1))
            c = w
    return Classifier(nn.Sequential(*layers), c)


class CBAM(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.mlp = nn.Sequential(nn.Conv2d(c, c // 16, 1), nn.ReLU(), nn.Conv2d(c // 16, c, 1))
        self.spatial = nn.Conv2d(2, 1, 7, padding=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * torch.sigmoid(self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1)))
        a = torch.cat([x.mean(1, keepdim=True), x.max(1, keepdim=True)[0]], 1)
        return x * torch.sigmoid(self.spatial(a))


def resnet18_cbam() -> nn.Module:
    layers: list[nn.Module] = [cbr(3, 64, 7, 2), nn.MaxPool2d(3, 2, 1)]
    c = 64
    for i, w in enumerate([64, 128, 256, 512]):
        layers += [Basic(c, w, 2 if i > 0 else 1), Basic(w, w, 1), CBAM(w)]
        c = w
    return Classifier(nn.Sequential(*layers), c)


# -- detectors ------------------------------------------------------------------------------------
class RepNCSPELAN4(nn.Module):
    """YOLOv9 GELAN block as written in its repository (RepNCSP parts as plain CSP-res stacks)."""

    def __init__(self, c1: int, c2: int, c3: int, c4: int) -> None:
        super().__init__()
        self.c = c3 // 2
        self.cv1 = cbr(c1, c3)
        self.cv2 = nn.Sequential(CSPRes(c3 // 2, c4), cbr(c4, c4, 3))
        self.cv3 = nn.Sequential(CSPRes(c4, c4), cbr(c4, c4, 3))
        self.cv4 = cbr(c3 + 2 * c4, c2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = list(self.cv1(x).chunk(2, 1))
        y.extend(m(y[-1]) for m in [self.cv2, self.cv3])
        return self.cv4(torch.cat(y, 1))


class CSPRes(nn.Module):
    def __init__(self, c1: int, c2: int) -> None:
        super().__init__()
        h = c2 // 2
        self.cv1, self.cv2, self.cv3 = cbr(c1, h), cbr(c1, h), cbr(2 * h, c2)
        self.m = Basic(h, h, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.cv3(torch.cat((self.m(self.cv1(x)), self.cv2(x)), 1))


def gelan_c_backbone() -> nn.Module:
    return nn.Sequential(
        cbr(3, 64, 3, 2),
        cbr(64, 128, 3, 2),
        RepNCSPELAN4(128, 256, 128, 64),
        cbr(256, 256, 3, 2),
        RepNCSPELAN4(256, 512, 256, 128),
        cbr(512, 512, 3, 2),
        RepNCSPELAN4(512, 512, 512, 256),
    )


class IDetect(nn.Module):
    def __init__(self, nc: int = 80, ch: tuple[int, ...] = (128, 256, 512), na: int = 3) -> None:
        super().__init__()
        self.na, self.no = na, nc + 5
        self.m = nn.ModuleList(nn.Conv2d(c, self.no * na, 1) for c in ch)

    def forward(self, xs: list[torch.Tensor]) -> list[torch.Tensor]:
        out = []
        for i, x in enumerate(xs):
            y = self.m[i](x)
            bs, _, ny, nx = y.shape
            out.append(y.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous())
        return out


class YOLOv7Tiny(nn.Module):
    """A YOLOv7-tiny-like ELAN backbone + IDetect on three levels (the head's 5-D view included)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(cbr(3, 32, 3, 2), cbr(32, 64, 3, 2))
        self.elan = nn.ModuleList([ELAN(64, 128), ELAN(128, 256), ELAN(256, 512)])
        self.detect = IDetect()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x, feats = self.stem(x), []
        for i, m in enumerate(self.elan):
            x = m(F.max_pool2d(x, 2) if i else x)
            feats.append(x)
        return self.detect(feats)


class ELAN(nn.Module):
    def __init__(self, c1: int, c2: int) -> None:
        super().__init__()
        h = c2 // 4
        self.cv1, self.cv2 = cbr(c1, h), cbr(c1, h)
        self.cv3, self.cv4 = cbr(h, h, 3), cbr(h, h, 3)
        self.out = cbr(4 * h, c2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.cv1(x), self.cv2(x)
        c = self.cv3(b)
        return self.out(torch.cat([a, b, c, self.cv4(c)], 1))


# -- attention: refused on purpose (no IR op for a product over tokens) ---------------------------------
class Attention(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class ViTBlock(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(d), Attention(d, heads)
        self.norm2, self.fc1, self.fc2 = nn.LayerNorm(d), nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    def __init__(self, d: int = 192, depth: int = 12, heads: int = 3) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, d, 16, 16)
        self.blocks = nn.Sequential(*(ViTBlock(d, heads) for _ in range(depth)))
        self.head = nn.Linear(d, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(self.patch(x).flatten(2).transpose(1, 2)).mean(1))


S = (2, 3, 64, 64)
ZOO: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "resnet18": (lambda: resnet("basic", [2, 2, 2, 2], [64, 128, 256, 512]), S),
    "resnet50": (lambda: resnet("bottle", [3, 4, 6, 3], [256, 512, 1024, 2048]), S),
    "resnext50_32x4d": (lambda: resnet("bottle", [3, 4, 6, 3], [256, 512, 1024, 2048], groups=32, width=128), S),
    "regnety_stage": (lambda: resnet("bottle", [1, 2, 4, 1], [48, 104, 208, 440], groups=8, width=48, se=True), S),
    "resnet50_gn": (resnet50_gn, S),
    "resnet18_cbam": (resnet18_cbam, S),
    "densenet121": (densenet121, S),
    "mobilenet_v2": (mobilenet_v2, S),
    "mobilenet_v3_large": (mobilenet_v3_large, S),
    "efficientnet_b0": (efficientnet_b0, S),
    "ese_vovnet19": (ese_vovnet19, S),
    "cspdarknet53": (cspdarknet53, S),
    "inception_v3_c": (inception_v3_c, (2, 3, 34, 34)),
    "squeezenet": (squeezenet, S),
    "vgg11": (vgg11, S),
    "deeplabv3_aspp": (deeplabv3_head, S),
    "res2net_stage": (res2net_stage, S),
    "convnext_tiny": (convnext_tiny, S),
    "shufflenet_v2": (shufflenet_v2, S),
    "gelan_c_backbone": (gelan_c_backbone, S),
    "yolov7_tiny_idetect": (YOLOv7Tiny, S),
    "vit_tiny": (ViT, S),
}
