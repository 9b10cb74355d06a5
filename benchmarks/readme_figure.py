"""Draw ``docs/img/pareto.png``, the figure the README shows, with the search's own report code
(:func:`nas.engine.record.report.plot_pareto`): the paper's detector presets at their exact FLOPs and
the proxy APs they measured at the default recipe (docs/results.md, "The paper at proxy scale",
one H200, seed 0) — real numbers, drawn as a ``make search`` run draws its trained trials.

    python -m benchmarks.readme_figure [--out docs/img/pareto.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from nas.core.cost import cost, parse_flops
from nas.engine.options import SearchOptions
from nas.engine.record.report import pareto_rows, plot_pareto
from search_spaces import compile_config, load_config

#: default-recipe proxy AP per preset, seed 0 (docs/results.md, the paper-ablation table)
MEASURED_AP = {
    "yolor-v3": 0.327,
    "yolor-prn": 0.326,
    "yolor-csp": 0.256,
    "yolor-csp-fusion-first": 0.208,
    "yolor-csp-fusion-last": 0.340,
    "yolor-csp-no-fusion": 0.324,
    "yolor-elan-1-1": 0.236,
    "yolor-elan-2-1": 0.265,
    "yolor-elan-2-2": 0.317,
}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("docs/img/pareto.png"))
    args = p.parse_args(argv)
    budget = parse_flops("150GFLOPs")
    rows = []
    for i, (name, ap) in enumerate(MEASURED_AP.items()):
        c = cost(compile_config(load_config(name)))
        rows.append({"trial": i, "state": "COMPLETE", "AP": ap, "last_AP": None, "flops": c.flops, "name": name})
    front = pareto_rows(rows, budget)
    opts = SearchOptions(budget=budget, name="presets")
    plot_pareto(rows, front, budget, args.out, opts=opts)
    print(f"{args.out}: {len(rows)} presets, front {[r['name'] for r in front]}")


if __name__ == "__main__":
    main()
