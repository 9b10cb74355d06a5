"""Peak activation memory of one forward pass (batch 1, fp32), from the IR alone.

Walk the LayerGraph in its topological (forward) order, keep the set of live tensors and take
the largest total held while an op runs. What counts — the semantics of the built module run by
an executor that frees a tensor after its last reader (what ``torch.fx`` code, ONNX Runtime and
any deployment runtime do), with BatchNorm folded into the conv:

- the **input** image counts and stays live for the whole forward (the caller holds it);
- an op that computes (``conv``, ``linear``, ``concat``, ``add``, ``maxpool``, ``gap``,
  ``upsample``) **allocates** its output; conv+BN+SiLU is one tensor (BN folded, SiLU in place);
- a **partial add** (PRN) runs as :func:`nas.core.module._add` does: it sums its channel range into
  a scratch tensor (both operands live), then concatenates it with the untouched channels into
  its output (the second operand, if nothing else reads it, is already freed);
- ``split``, ``detach``, ``flatten`` and ``output`` are **views**: they allocate nothing and keep
  the tensor they view alive while they are live (torch slices share storage; ONNX Runtime's
  ``Slice`` would copy — a runtime difference this model does not follow);
- a tensor is freed right after its last reader runs; the **outputs** stay live to the end.

Parameters are not activations and are not counted. Cost: O(nodes + edges).
"""

from __future__ import annotations

from nas.core.ir import LayerGraph, Node

BYTES_PER_ELEMENT = 4  # fp32
VIEW_OPS = frozenset({"split", "detach", "flatten", "output"})


def tensor_bytes(node: Node, batch: int = 1) -> int:
    """Bytes of ``node``'s output tensor (fp32)."""
    return BYTES_PER_ELEMENT * batch * node.channels * node.size[0] * node.size[1]


def _transient_bytes(node: Node, batch: int) -> int:
    """Scratch an op holds beside its output while it runs (the partial add's range sum)."""
    if node.op == "add" and not node.attrs["full"]:
        lo, hi = node.attrs["dst"]
        return BYTES_PER_ELEMENT * batch * (hi - lo) * node.size[0] * node.size[1]
    return 0


def memory_timeline(graph: LayerGraph, batch: int = 1) -> list[tuple[str, int]]:
    """(node, bytes live while it runs) in forward order; the peak is the max.

    >>> g = LayerGraph(3, (4, 4))
    >>> y = g.conv(g.input_name, 8, k=3)
    >>> [b for _, b in memory_timeline(g)]  # input 3x4x4, then input + conv output 8x4x4 (fp32)
    [192, 704]
    """
    nodes = graph.nodes
    base: dict[str, str] = {}  # node -> the allocating node whose storage it uses
    for node in nodes.values():
        base[node.name] = base[node.inputs[0]] if node.op in VIEW_OPS else node.name
    order = {name: i for i, name in enumerate(nodes)}
    last_use: dict[str, int] = {}  # storage -> last step that reads (or is) an alias of it
    for node in nodes.values():
        i = order[node.name]
        last_use[base[node.name]] = max(last_use.get(base[node.name], i), i)
        for src in node.inputs:
            b = base[src]
            last_use[b] = max(last_use.get(b, i), i)
    pinned = {base[graph.input_name]} | {base[o] for o in graph.outputs}
    free_at: dict[int, list[str]] = {}
    for b, i in last_use.items():
        if b not in pinned:
            free_at.setdefault(i, []).append(b)
    live = 0
    timeline = []
    for i, node in enumerate(nodes.values()):
        alloc = tensor_bytes(node, batch) if base[node.name] == node.name else 0
        dying = free_at.get(i, [])
        scratch = _transient_bytes(node, batch)
        if scratch:  # partial add: sum the range (both operands live), then concatenate
            y = base[node.inputs[1]]
            first = live + scratch
            if y in dying and y != base[node.inputs[0]]:  # the second operand is last read by the sum
                live -= tensor_bytes(nodes[y], batch)
                dying = [b for b in dying if b != y]
            timeline.append((node.name, max(first, live + scratch + alloc)))
        else:
            timeline.append((node.name, live + alloc))
        live += alloc
        for b in dying:
            live -= tensor_bytes(nodes[b], batch)
    return timeline


def peak_memory_bytes(graph: LayerGraph, batch: int = 1) -> int:
    """Peak activation memory of one forward (fp32) in bytes — see the module docstring for
    what counts.

    >>> g = LayerGraph(3, (8, 8))
    >>> a = g.conv(g.input_name, 4)
    >>> b = g.conv(a, 4)
    >>> _ = g.output(g.add(a, b))
    >>> peak_memory_bytes(g)  # while the add runs: input + a + b + (a + b)
    3840
    """
    return max(b for _, b in memory_timeline(graph, batch))
