"""The gradient-path table: per-stage designs of the space, trained with 2 seeds, shipped as data.

The project's own NAS benchmark for its space (issue 28, docs/gp-features.md). Anyone can use it
to evaluate a cheap score or a search strategy without training, as NAS-Bench-201 allows. The
sampling rule, the fit / held-out split and the analysis plan are fixed in docs/gp-features.md
before any result is read:

- **fit set**: ``gp_candidate(i, FIT_SEED)`` for i = 0, 1, ... (duplicates skipped), the first
  80 (``f00`` … ``f79``);
- **held-out set**: the same rule with ``HELDOUT_SEED``, the first 40 (``h00`` … ``h39``). They
  are trained only after the score fitted on the fit set is committed (``--fit-commit``);
- stratified over the 16 (backbone × neck majority block) pairs × 4 FLOPs bands below 150
  GFLOPs at 640 px; each round of 16 is balanced over pairs and bands.

Per design, recorded at registration (no training): config, params, FLOPs, peak activation
memory, the network-level gradient-path metrics and the per-stage features. Per training, in
``benchmarks/data/gp_table_results.jsonl``: every epoch's AP and loss, the final AP, and the CPU
and wall seconds. There are 2 seeds per design at full fidelity, and the proxy stage's complete
short schedule (``--fidelity low``) for the first 64 fit designs.

Resumable and shardable like ``benchmarks/proxy_noise.py``, by the same study runner
(:mod:`benchmarks.lib.study`); the designs are drawn by :mod:`benchmarks.lib.designs`::

    .venv/bin/python -m benchmarks.gp_table --register                  # once, then commit it
    .venv/bin/python -m benchmarks.gp_table --fidelity full,low --shard 0/2 &
    .venv/bin/python -m benchmarks.gp_table --fidelity full,low --shard 1/2 &
    .venv/bin/python -m benchmarks.gp_table --collect                   # into the results file
    .venv/bin/python -m benchmarks.gp_table --split heldout --fit-commit SHA   # after the fit

Reading it: :func:`load_table`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
from pathlib import Path
from typing import Any

from benchmarks.lib.common import BENCH_DIR
from benchmarks.lib.designs import gp_candidate, majority_blocks
from benchmarks.lib.recipes import SCALES
from benchmarks.lib.study import collect, pending, read_rows, run_once, shard_arg, timed_training, write_once

ROOT = Path(__file__).resolve().parents[1]
DESIGNS_FILE = ROOT / "benchmarks" / "data" / "gp_table_designs.json"
RESULTS_FILE = ROOT / "benchmarks" / "data" / "gp_table_results.jsonl"
STUDY_DIR = BENCH_DIR / "gp_table"
FIT_SEED, HELDOUT_SEED = 28, 2801
FIT_DESIGNS, HELDOUT_DESIGNS = 80, 40
#: the first 64 fit designs (4 rounds: every (pair, band) cell once) also train the low fidelity
LOW_FIDELITY_DESIGNS = 64
SEEDS = (0, 1)
#: the recipe of the table: the search's default (the proxy-noise issue's ``v2``)
RECIPE_VERSION = "v2"
FIDELITIES = ("full", "low")
SPLITS = {"fit": ("f", FIT_SEED, FIT_DESIGNS), "heldout": ("h", HELDOUT_SEED, HELDOUT_DESIGNS)}
#: the registered text: it names the draws where they lived then (both now in benchmarks.lib.designs,
#: with the FLOPs bands, ``BANDS``)
RULE = (
    "benchmarks.gp_table.gp_candidate(i, seed), i = 0, 1, ...: round r = i div 16, the 16 "
    "(backbone, neck) majority-block pairs in an order shuffled by (seed, r), canonical pair p in "
    "band (p + r) mod 4 of 4 FLOPs bands [k, k+1) x 37.5 GFLOPs at 640 px; the design drawn by "
    "benchmarks.rank_study.perstage_draw in that band; a duplicate of an earlier design (of either "
    f"split) skipped. fit: seed {FIT_SEED}, the first {FIT_DESIGNS}; held-out: seed {HELDOUT_SEED}, "
    f"the first {HELDOUT_DESIGNS}; seeds {list(SEEDS)}; low fidelity for the first "
    f"{LOW_FIDELITY_DESIGNS} fit designs. docs/gp-features.md"
)
HELDOUT_NOTE = "train only after the score fitted on the fit set is committed (--fit-commit)"
#: the committed file a held-out or active round's trainings wait for (``--fit-commit`` must hold it)
FIT_FILES = ("benchmarks/data/gp_fit.json", "nas/engine/scores/data/fitted_score.json")


def round_file(round_: int) -> Path:
    """The design file of active round ``round_`` (:mod:`benchmarks.gp_active`); its split is ``a<round>``."""
    return ROOT / "benchmarks" / "data" / f"gp_active_r{round_}.json"


# -- the registered designs -----------------------------------------------------------------------
def design_record(cfg: Any, design_id: str, band: int) -> dict[str, Any]:
    """What the table records of a design without training it (docs/gp-features.md)."""
    from nas.core.cost import cost
    from nas.core.memory import peak_memory_bytes
    from nas.core.metrics import gradient_path_metrics
    from nas.engine.scores.features import stage_path_features
    from search_spaces import compile_config

    graph = compile_config(cfg)
    c = cost(graph)
    network = gradient_path_metrics(graph)
    return {
        "id": design_id,
        "blocks": majority_blocks(cfg),
        "band": band,
        "pattern": "/".join(cfg.pattern()),
        "flops": c.flops,
        "params": c.params,
        "peak_memory_bytes": peak_memory_bytes(graph),
        "metrics": network.to_dict(layers=False),
        **stage_path_features(cfg, graph, network),
        "config": cfg.to_dict(),
    }


def draw(seed: int, count: int, prefix: str, exclude: set[str] | None = None) -> list[dict[str, Any]]:
    """The first ``count`` designs of the rule for ``seed`` (keys in ``exclude`` skipped, and
    updated with the drawn ones)."""
    seen = exclude if exclude is not None else set()
    out, i = [], 0
    while len(out) < count:
        cfg, _, band = gp_candidate(i, seed)
        i += 1
        if cfg.key() in seen:
            continue
        seen.add(cfg.key())
        out.append(design_record(cfg, f"{prefix}{len(out):02d}", band))
    return out


def registration(fit: int = FIT_DESIGNS, heldout: int = HELDOUT_DESIGNS) -> dict[str, Any]:
    """The registered document: the rule, and both splits drawn by it (a pure function)."""
    seen: set[str] = set()
    doc: dict[str, Any] = {"rule": RULE, "recipe": RECIPE_VERSION, "seeds": list(SEEDS)}
    for split, count in (("fit", fit), ("heldout", heldout)):
        prefix, seed, _ = SPLITS[split]
        doc[split] = {"seed": seed, "designs": draw(seed, count, prefix, seen)}
    doc["heldout"]["note"] = HELDOUT_NOTE
    return doc


def register(path: Path = DESIGNS_FILE, fit: int = FIT_DESIGNS, heldout: int = HELDOUT_DESIGNS) -> dict[str, Any]:
    """Write the registration once (a second call returns the file, refusing a different list)."""
    return write_once(path, registration(fit, heldout))


def load_designs(path: Path = DESIGNS_FILE, split: str = "fit") -> list[dict[str, Any]]:
    if not path.exists():
        raise SystemExit(f"error: {path} is missing; accepted: register the designs first (--register) and commit it")
    return json.loads(path.read_text())[split]["designs"]


# -- one training ---------------------------------------------------------------------------------
def low_epochs(epochs: int) -> int:
    """The proxy stage's low fidelity for a recipe of ``epochs``: the bottom rung of the longest
    ladder of :func:`nas.engine.proxy.fidelity.ladder` (a complete schedule of that many epochs).

    >>> low_epochs(6), low_epochs(2)
    (2, 1)
    """
    from nas.engine.proxy.fidelity import ladder

    return ladder(epochs)[-1][0]


def table_recipe(scale: str, fidelity: str, seed: int) -> Any:
    """The trainer's recipe of the table at ``scale`` and ``fidelity`` for ``seed`` (fp32)."""
    from evaluators.recipe import Recipe

    recipe = Recipe.named(RECIPE_VERSION, **SCALES[scale])
    if fidelity == "low":
        recipe = recipe.replace(epochs=low_epochs(recipe.epochs))
    return recipe.replace(seed=seed, precision="fp32")


def jobs(
    designs: list[dict[str, Any]], fidelities: list[str], low_designs: int
) -> list[tuple[dict[str, Any], int, str]]:
    """Every (design, seed, fidelity), seed-major and full fidelity first: a table cut short has
    whole seed pairs of its first designs."""
    out = []
    for fidelity in fidelities:
        chosen = designs if fidelity == "full" else designs[:low_designs]
        out += [(d, seed, fidelity) for seed in SEEDS for d in chosen]
    return out


def job_dir(scale: str, fidelity: str, design: dict[str, Any], seed: int, root: Path = STUDY_DIR) -> Path:
    return root / scale / fidelity / design["id"] / f"seed{seed}"


def row_key(r: dict[str, Any]) -> tuple[str, str, str, int]:
    return (r["scale"], r["fidelity"], r["design"], r["seed"])


def run_job(
    scale: str, fidelity: str, design: dict[str, Any], seed: int, root: Path = STUDY_DIR, fit_commit: str | None = None
) -> dict[str, Any]:
    """Train (or resume: the trainer checkpoints every epoch) one job; ``scores.json`` marks it done."""
    folder = job_dir(scale, fidelity, design, seed, root)
    return run_once(folder / "scores.json", lambda: _train(scale, fidelity, design, seed, folder, fit_commit))


def _train(
    scale: str, fidelity: str, design: dict[str, Any], seed: int, folder: Path, fit_commit: str | None
) -> dict[str, Any]:
    recipe = table_recipe(scale, fidelity, seed)
    result, seconds = timed_training(design, recipe, folder)
    row = {
        "scale": scale,
        "fidelity": fidelity,
        "epochs": recipe.epochs,
        "recipe": recipe.version,
        "design": design["id"],
        "seed": seed,
        "status": result["status"],
        "AP": result["AP"],
        "history_AP": [e["AP"] for e in result["history"]],
        "history_loss": [e["loss"] for e in result["history"]],
        "val_loss": result["history"][-1].get("val_loss"),
        **seconds,
    }
    if fit_commit:
        row["fit_commit"] = fit_commit
    return row


# -- reading the table ----------------------------------------------------------------------------
def load_table(
    designs: Path = DESIGNS_FILE, results: Path = RESULTS_FILE, scale: str = "reduced", rounds: int = 0
) -> list[dict[str, Any]]:
    """Every registered design with its recorded features and its trainings at ``scale``; with
    ``rounds`` = R, also the designs of active rounds 1 … R (split ``a1`` … ``aR``).

    Each entry is the design's record (``id``, ``split``, ``config``, ``flops``, ``params``,
    ``peak_memory_bytes``, ``metrics``, ``stages``, ``levels``, ``aggregates``, ...) plus
    ``trainings``: ``{fidelity: {seed: row}}`` for the finished trainings, and ``AP``: the mean
    over seeds of the full-fidelity final AP (``None`` until both seeds are in). A score or a
    search strategy is evaluated on it by reading ``AP`` instead of training.

    >>> table = load_table()
    >>> [sum(d["split"] == s for d in table) for s in ("fit", "heldout")]
    [80, 40]
    >>> d = table[0]
    >>> d["id"], d["flops"] < 150e9, len(d["stages"]), "flops_w.max_shortest_gradient_path" in d["aggregates"]
    ('f00', True, 10, True)
    """
    doc = json.loads(designs.read_text())
    by_design: dict[str, dict[str, dict[int, dict[str, Any]]]] = {}
    for r in read_rows(results):
        if r["scale"] == scale and r["status"] == "ok":
            by_design.setdefault(r["design"], {}).setdefault(r["fidelity"], {})[r["seed"]] = r
    splits = [(split, doc[split]["designs"]) for split in SPLITS]
    for r in range(1, rounds + 1):
        splits.append((f"a{r}", json.loads(round_file(r).read_text())[f"a{r}"]["designs"]))
    out = []
    for split, registered in splits:
        for d in registered:
            trainings = by_design.get(d["id"], {})
            full = trainings.get("full", {})
            ap = sum(full[s]["AP"] for s in SEEDS) / len(SEEDS) if all(s in full for s in SEEDS) else None
            out.append({**d, "split": split, "trainings": trainings, "AP": ap})
    return out


def _fit_commit_ok(sha: str) -> bool:
    """Whether ``sha`` names a commit of this repository's history (an ancestor of HEAD) that holds
    a committed fit file: what the held-out set and every active round wait for."""

    def git(*args: str) -> bool:
        return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True).returncode == 0

    return (
        git("cat-file", "-e", f"{sha}^{{commit}}")
        and git("merge-base", "--is-ancestor", sha, "HEAD")
        and any(git("cat-file", "-e", f"{sha}:{f}") for f in FIT_FILES)
    )


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--register", action="store_true", help=f"write the design lists ({DESIGNS_FILE.name}) once")
    p.add_argument("--split", choices=sorted(SPLITS), default="fit")
    p.add_argument(
        "--round", type=int, default=None, help="train active round R (benchmarks.gp_active) instead of a split"
    )
    p.add_argument("--fit-commit", default=None, help="the commit of the fitted score (required by --split heldout)")
    p.add_argument("--scale", choices=sorted(SCALES), default="reduced")
    p.add_argument("--fidelity", default="full", help=f"comma-separated, of: {', '.join(FIDELITIES)}")
    p.add_argument("--designs", type=int, default=None, help="train only the first N designs of the split")
    p.add_argument("--low-designs", type=int, default=LOW_FIDELITY_DESIGNS, help="designs trained at low fidelity")
    p.add_argument("--shard", default="0/1", help="i/n: train only jobs j with j mod n == i")
    p.add_argument("--deadline", default=None, help="UTC HH:MM: start no training after it")
    p.add_argument("--collect", action="store_true", help=f"merge finished trainings into {RESULTS_FILE.name}")
    p.add_argument("--study-dir", type=Path, default=STUDY_DIR, help=argparse.SUPPRESS)
    p.add_argument("--designs-file", type=Path, default=DESIGNS_FILE, help=argparse.SUPPRESS)
    p.add_argument("--results-file", type=Path, default=RESULTS_FILE, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    fidelities = [f for f in args.fidelity.split(",") if f]
    bad = [f for f in fidelities if f not in FIDELITIES]
    if bad or not fidelities:
        p.exit(
            2,
            f"error: --fidelity {args.fidelity!r} is not accepted; accepted: a comma-separated list of {', '.join(FIDELITIES)}\n",
        )
    shard = shard_arg(p, args.shard)
    training = not (args.register or args.collect)
    if training and args.round:
        args.designs_file, args.split = round_file(args.round), f"a{args.round}"
        if not args.designs_file.exists():
            p.exit(
                2,
                f"error: round {args.round} is not registered ({args.designs_file.name} missing); accepted: python -m benchmarks.gp_active --register {args.round}, committed\n",
            )
        args.fit_commit = args.fit_commit or json.loads(args.designs_file.read_text())["score"]["fit_commit"]
    if (
        training
        and (args.split == "heldout" or args.round)
        and not (args.fit_commit and _fit_commit_ok(args.fit_commit))
    ):
        p.exit(
            2,
            f"error: {'--round' if args.round else '--split heldout'} needs --fit-commit naming a commit of HEAD's "
            f"history that holds the fitted score (got {args.fit_commit!r}); {HELDOUT_NOTE}\n",
        )
    if args.register:
        doc = register(args.designs_file)
        print(
            f"{args.designs_file}: {len(doc['fit']['designs'])} fit + {len(doc['heldout']['designs'])} held-out designs"
        )
        return 0
    if args.collect:
        rows = collect(args.study_dir, args.results_file, key=row_key)
        print(f"{args.results_file}: {len(rows)} trainings")
        return 0
    designs = load_designs(args.designs_file, args.split)[: args.designs]
    todo = jobs(designs, fidelities, args.low_designs)

    collected = {row_key(r) for r in read_rows(args.results_file)} if args.results_file.exists() else set()

    def done(job: tuple[dict[str, Any], int, str]) -> bool:
        """Trained here (its folder's marker) or on another machine or session (its committed row)."""
        d, seed, fidelity = job
        marker = job_dir(args.scale, fidelity, d, seed, args.study_dir) / "scores.json"
        return marker.exists() or (args.scale, fidelity, d["id"], seed) in collected

    for j, (d, seed, fidelity) in pending(todo, shard, done, args.deadline):
        r = run_job(args.scale, fidelity, d, seed, args.study_dir, args.fit_commit)
        print(
            f"[{j + 1}/{len(todo)}] {args.scale}/{fidelity} {d['id']} ({d['blocks']}) seed {seed}: AP {r['AP']}  cpu {r['cpu_s']:.0f} s",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
