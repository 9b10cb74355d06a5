"""Issue 29's acceptance figures: every yolor preset and N random configs of the ``yolor`` space exported
as yolov7 and yolov9 model YAML, parsed by the repositories' own ``parse_model`` (tests/support/yolo_repos.py),
their backbone + neck compared with ours in params, FLOPs and gradient-path metrics.

    .venv/bin/python -m benchmarks.export_check [--configs 200] [--seed 29]

Prints one line per flavour: exported, refused (and why), exact params/FLOPs, equal metrics (PRN's partial
residual splits one layer into two: docs/full-scale-training.md says what that changes)."""

from __future__ import annotations

import argparse
import collections
import random

from nas.core.yolo_yaml import ExportError
from search_spaces import compile_config, load_config
from search_spaces.config import preset_names
from search_spaces.space import SPACES
from tests.core.test_yolo_export import check, has_partial_add


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", type=int, default=200)
    ap.add_argument("--seed", type=int, default=29)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    graphs = [(p, compile_config(load_config(p))) for p in preset_names() if p.startswith("yolor")]
    graphs += [(f"random{i}", compile_config(SPACES["yolor"].sample(rng))) for i in range(args.configs)]
    for flavour in ("yolov7", "yolov9"):
        tally: collections.Counter[str] = collections.Counter()
        for name, graph in graphs:
            try:
                check(graph, flavour, metrics=False)
            except ExportError as e:
                tally["refused: " + str(e).split(":")[1].split(",")[0].strip()[:40]] += 1
                continue
            except AssertionError:
                tally["MISMATCH"] += 1
                print(f"{flavour}: {name} params/FLOPs differ")
                continue
            tally["exact params+FLOPs"] += 1
            kind = "metrics (PRN, partial add)" if has_partial_add(graph) else "metrics equal"
            try:
                check(graph, flavour, metrics=True)
                tally[kind + ": equal"] += 1
            except AssertionError:
                tally[kind + ": differ"] += 1
        print(flavour, dict(tally))


if __name__ == "__main__":
    main()
