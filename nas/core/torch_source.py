"""LayerGraph -> one standalone ``model.py`` (plain PyTorch, importing nothing of this package).

The file defines ``ConvBNAct`` and ``Net``, whose submodules carry the names :class:`nas.core.module.GraphNet`
gives them (``backbone.stage3.unit0.cv1``), so a GraphNet state dict loads into it unchanged, and whose
``forward`` is the graph written out op by op (partial adds as the slice/add/cat torch.fx reads back as
one partial add), so ``nas analyze model.py:build`` finds the same params, FLOPs and gradient-path metrics.
"""

from __future__ import annotations

from nas.core.ir import LayerGraph

_HEADER = '''"""{title}: written by gradpath-nas `nas export --format torch`. Plain PyTorch; no other import.

    from model import build
    net = build()            # outputs: a list, one tensor per output ({outputs})
{weights}"""

import torch
import torch.nn.functional as F
from torch import nn


class ConvBNAct(nn.Module):
    """Conv2d (+ BatchNorm2d + SiLU)."""

    def __init__(self, c_in, c_out, k, stride, groups, bn, act, bias):
        super().__init__()
        kh, kw = (k, k) if isinstance(k, int) else k
        self.conv = nn.Conv2d(c_in, c_out, (kh, kw), stride, (kh // 2, kw // 2), groups=groups, bias=bias)
        self.bn = nn.BatchNorm2d(c_out, eps=1e-3, momentum=0.03) if bn else nn.Identity()
        self.act = nn.SiLU(inplace=True) if act else nn.Identity()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


def _put(root, name, module):
    *path, leaf = name.split(".")
    for part in path:
        if not hasattr(root, part):
            root.add_module(part, nn.Module())
        root = getattr(root, part)
    root.add_module(leaf, module)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
'''


#: the forward line of each one-input parameter-free op (formatted with the node's attrs), as GraphNet runs it
_ONE_INPUT = {
    "split": "{x}[:, {lo}:{hi}]",
    "maxpool": "F.max_pool2d({x}, {k}, {stride}, {k} // 2)",
    "gap": "torch.flatten(F.adaptive_avg_pool2d({x}, 1), 1)",
    "flatten": "torch.flatten({x}, 1)",
    "upsample": "F.interpolate({x}, scale_factor={scale}, mode='nearest')",
    "detach": "{x}.detach()",
}


def _ref(name: str) -> str:
    parts = name.split(".")
    if all(p.isidentifier() for p in parts):
        return "self." + name
    return f"self.get_submodule({name!r})"


def to_source(graph: LayerGraph, title: str = "model", weights: str | None = None) -> str:
    """The text of ``model.py`` for ``graph`` (``build()`` returns the network, weights freshly initialised);
    ``weights``: the file name of a state dict written beside it, whose loading the docstring shows."""
    var = {n.name: f"v{i}" for i, n in enumerate(graph)}
    init, body = [], ["    def forward(self, x):", "        outputs = []"]
    for node in graph:
        v, a = var[node.name], node.attrs
        ins = [var[i] for i in node.inputs]
        if node.op == "conv":
            c_in = graph.node(node.inputs[0]).channels
            k = tuple(a["kernel"]) if a.get("kernel") else a["k"]
            args = f"{c_in}, {node.channels}, {k}, {a['stride']}, {a['groups']}, {a['bn']}, {a['act']}, {a['bias']}"
            init.append(f"        _put(self, {node.name!r}, ConvBNAct({args}))")
            body.append(f"        {v} = {_ref(node.name)}({ins[0]})")
        elif node.op == "linear":
            init.append(
                f"        _put(self, {node.name!r}, nn.Linear({graph.node(node.inputs[0]).channels}, {node.channels}))"
            )
            body.append(f"        {v} = {_ref(node.name)}({ins[0]})")
        elif node.op == "input":
            body.append(f"        {v} = x")
        elif node.op == "concat":
            body.append(f"        {v} = torch.cat([{', '.join(ins)}], 1)")
        elif node.op == "add":
            if a["full"]:
                body.append(f"        {v} = {ins[0]} + {ins[1]}")
            else:
                (lo, hi), (s0, s1) = a["dst"], a["src"]
                parts = ([f"{ins[0]}[:, :{lo}]"] if lo > 0 else []) + [
                    f"{ins[0]}[:, {lo}:{hi}] + {ins[1]}[:, {s0}:{s1}]"
                ]
                parts += [f"{ins[0]}[:, {hi}:]"] if hi < node.channels else []
                body.append(f"        {v} = torch.cat([{', '.join(parts)}], 1)")
        elif node.op in _ONE_INPUT:
            body.append(f"        {v} = " + _ONE_INPUT[node.op].format(x=ins[0], **a))
        elif node.op == "output":
            body.append(f"        outputs.append({ins[0]})  # {node.name}")
        else:  # mul / reduce: only traced graphs carry them, never a config
            raise ValueError(f"op {node.op} has no standalone form")
    body.append("        return outputs")
    outputs = ", ".join(graph.node(o).name for o in graph.outputs)
    load = f"    net.load_state_dict(torch.load({weights!r}, weights_only=True))\n" if weights else ""
    text = _HEADER.format(title=title, outputs=outputs, weights=load) + "\n".join(init) + "\n\n" + "\n".join(body)
    return text + "\n\n\ndef build():\n    return Net()\n"
