"""The bottom layer: the LayerGraph IR and everything derived from it alone — exact cost,
gradient-path metrics, the torch builder, the capture of any ``nn.Module`` (``nas.core.fx``),
atomic run I/O and the error base. It imports nothing from the layers above
(docs/architecture.md); torch is imported only by the modules that build or trace modules.

>>> from nas.core import LayerGraph, cost
>>> g = LayerGraph(3, (64, 64))
>>> _ = g.output(g.conv(g.input_name, 16, 3, 2), name="out")
>>> cost(g).flops
884736
"""

from nas.core.cost import Cost, cost, parse_flops
from nas.core.errors import GradpathError, UsageError
from nas.core.ir import GraphError, LayerGraph, Node

__all__ = ["Cost", "GradpathError", "GraphError", "LayerGraph", "Node", "UsageError", "cost", "parse_flops"]
