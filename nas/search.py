"""``nas search``: the two-stage search (DESIGN §6).

1. Cheap stage — Optuna study ``<name>-cheap``: every candidate is compiled, costed and scored
   by its gradient-path metrics in milliseconds; over-budget ones are recorded infeasible.
2. Selection — feasible, non-dominated on (cheap score ↑, FLOPs ↓), deduplicated, diverse
   across block types; the top K go on.
3. Proxy stage — Ray Tune trains each on the COCO proxy (``evaluators.train``, the one
   training code path) under ASHA; the driver owns Optuna study ``<name>`` (AP ↑, FLOPs ↓)
   through ask/tell: completed → COMPLETE, stopped by ASHA → PRUNED (last AP kept as an
   attribute), failed → FAIL with the reason. The search goes on past failures.

Resume: the same command again keeps every finished trial, marks the ones a kill interrupted
as FAIL (``interrupted``) and re-runs them (their per-epoch checkpoints make the re-run
continue, not restart), and recomputes nothing finished.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nas.cost import cost
from nas.runio import RunLock, atomic_write_json, atomic_write_text

CHEAP_SCORES = ("gradpath", "flops", "params")
FINISHED = ("COMPLETE", "PRUNED")


class SearchError(ValueError):
    """A user-facing search problem (bad options, storage that cannot be used, run in use)."""


@dataclasses.dataclass(frozen=True)
class SearchOptions:
    """Everything that defines a search; stored in ``runs/<name>/search.json`` so that a re-run
    with other options is refused instead of silently mixing two searches in one study."""

    budget: int
    name: str = "default"
    space: str = "yolor"
    candidates: int = 2000
    trials: int = 4
    data: str = "shapes"
    epochs: int = 6
    img_size: int = 160
    width_mult: float = 0.25
    images: int = 800
    workers: int = 1
    seed: int = 0
    cheap_score: str = "gradpath"
    ray_address: str | None = None
    storage: str | None = None
    runs_dir: str = "runs"

    # options that may differ between a run and its resume (where and how, not what)
    RUNTIME_ONLY = ("workers", "ray_address", "storage", "runs_dir")

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / self.name

    def identity(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in self.RUNTIME_ONLY}


def validate_options(opts: SearchOptions) -> None:
    """Reject bad options before anything is written."""
    from search_spaces.space import SPACES

    if not opts.name or any(c in opts.name for c in "/\\\0") or opts.name.startswith("."):
        raise SearchError(f"--name: {opts.name!r} is not a usable run name; accepted: a plain folder name")
    if opts.space not in SPACES:
        raise SearchError(f"--space: {opts.space!r} is unknown; accepted: {', '.join(SPACES)}")
    if opts.cheap_score not in CHEAP_SCORES:
        raise SearchError(f"--cheap-score: {opts.cheap_score!r} is unknown; accepted: {', '.join(CHEAP_SCORES)}")
    for flag, value, lo, hi in (
        ("--candidates", opts.candidates, 1, 10**6),
        ("--trials", opts.trials, 1, 10**4),
        ("--epochs", opts.epochs, 1, 1000),
        ("--images", opts.images, 8, 10**7),
        ("--workers", opts.workers, 1, 1024),
    ):
        if not lo <= value <= hi:
            raise SearchError(f"{flag}: {value} is out of range; accepted: an integer from {lo} to {hi}")
    if opts.img_size % 32 or not 32 <= opts.img_size <= 2048:
        raise SearchError(f"--img-size: {opts.img_size} is not accepted; accepted: a multiple of 32 from 32 to 2048")
    if not 0.03 <= opts.width_mult <= 4:
        raise SearchError(f"--width-mult: {opts.width_mult} is out of range; accepted: 0.03 to 4")
    if opts.data != "shapes" and not Path(opts.data).exists():
        raise SearchError(
            f"--data: {opts.data} does not exist; accepted: shapes or a COCO-format annotation file/folder"
        )


# -- storage -----------------------------------------------------------------------------------
def open_storage(url: str | None, run_dir: Path):  # noqa: ANN201 - optuna storage
    """The default is an Optuna *journal file* (``runs/<name>/optuna.journal``): one append-only
    file, written under a file lock, which stays readable by optuna-dashboard while the search
    appends to it and survives a SIGKILL (a torn last record is ignored on load). SQLite, the
    other single-file choice, is what Optuna's docs warn against under concurrent access (the
    dashboard reading while Ray callbacks write). ``--storage`` takes any Optuna RDB URL
    (``postgresql://…``) or a journal file path."""
    import optuna
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    if url is None or "://" not in url:
        path = Path(url) if url else run_dir / "optuna.journal"
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    try:
        return optuna.storages.RDBStorage(url)
    except Exception as e:  # noqa: BLE001 - any driver error is a user-facing storage problem
        raise SearchError(f"--storage: cannot open {url.split('@')[-1]!r} ({type(e).__name__}: {e})") from None


def _mark_constraint(study, trial, value: float) -> None:  # noqa: ANN001
    """Record feasibility three ways: Optuna 5's ``set_constraint``, the ``constraints`` system
    attribute that optuna-dashboard 0.21 reads, and a plain ``feasible`` user attribute."""
    trial.set_constraint("flops_over_budget", value)
    study._storage.set_trial_system_attr(trial._trial_id, "constraints", [value])
    trial.set_user_attr("feasible", value <= 0)


def _fail_interrupted(study) -> int:  # noqa: ANN001
    """Trials left RUNNING by a killed search become FAIL(interrupted); they will be re-run."""
    import optuna

    n = 0
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study._storage.set_trial_user_attr(t._trial_id, "interrupted", True)
        study._storage.set_trial_user_attr(t._trial_id, "reason", "interrupted (the search process stopped)")
        study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
        n += 1
    return n


# -- cheap stage -------------------------------------------------------------------------------
def score_candidate(cfg, kind: str = "gradpath") -> dict[str, Any]:  # noqa: ANN001
    """Compile, cost and score one config: the attributes a cheap trial records."""
    from nas.metrics import gradient_path_metrics
    from search_spaces import compile_config

    graph = compile_config(cfg)
    c = cost(graph)
    metrics = gradient_path_metrics(graph).to_dict(layers=False)
    return {
        "flops": c.flops,
        "params": c.params,
        "metrics": metrics,
        "score": cheap_score(kind, c.flops, c.params, metrics),
    }


def cheap_score(kind: str, flops: int, params: int, metrics: dict[str, Any]) -> float:
    """The cheap stage's quality estimate (higher is better).

    ``gradpath``: log of the gradient combinations per layer-channel, minus the log of the
    longest shortest gradient path — rich combinations (PRN/CSP) and short paths (ELAN) are what
    the paper argues make a network learn well. ``flops``/``params``: plain size baselines."""
    if kind == "flops":
        return float(flops)
    if kind == "params":
        return float(params)
    comb = max(1, metrics["gradient_combinations"])
    sgp = max(1, metrics["max_shortest_gradient_path"] or 1)
    return math.log(comb) - math.log(sgp)


def cheap_stage(storage, opts: SearchOptions, progress: bool = True):  # noqa: ANN001, ANN201
    import optuna

    from search_spaces.space import SPACES

    space = SPACES[opts.space]
    study = optuna.create_study(
        study_name=f"{opts.name}-cheap", storage=storage, directions=["maximize", "minimize"], load_if_exists=True
    )
    study.set_metric_names([f"{opts.cheap_score}_score", "flops"])
    _fail_interrupted(study)
    done = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    bar = _bar(opts.candidates, "cheap stage", progress, initial=done)
    for i in range(done, opts.candidates):
        # A sampler seeded by the candidate's index: its proposal depends only on the study's
        # history and the index, so a resumed search proposes what an unbroken one would have.
        study.sampler = optuna.samplers.NSGAIISampler(seed=opts.seed * 1_000_003 + i, population_size=100)
        trial = study.ask()
        cfg = space.suggest(trial)
        s = score_candidate(cfg, opts.cheap_score)
        trial.set_user_attr("config", cfg.to_yaml())
        trial.set_user_attr("key", cfg.key())
        trial.set_user_attr("params", s["params"])
        trial.set_user_attr("metrics", s["metrics"])
        _mark_constraint(study, trial, float(s["flops"] - opts.budget))
        study.tell(trial, [s["score"], float(s["flops"])])
        bar.update(1)
    bar.close()
    return study


# -- selection ---------------------------------------------------------------------------------
def _pareto_fronts(points: list[tuple[float, float]]) -> list[list[int]]:
    """Non-dominated sorting for (maximise a, minimise b): peel fronts with a sorted sweep."""
    remaining = list(range(len(points)))
    fronts = []
    while remaining:
        remaining.sort(key=lambda i: (points[i][1], -points[i][0]))
        front, rest, best = [], [], -math.inf
        for i in remaining:
            if points[i][0] > best:
                front.append(i)
                best = points[i][0]
            else:
                rest.append(i)
        fronts.append(front)
        remaining = rest
    return fronts


def select_candidates(trials: list, k: int, budget: int) -> list:  # noqa: ANN001
    """Feasible, deduplicated, front by front; within a front round-robin over the (backbone,
    neck) block pairs, best score first — so the K trained trials are not K copies of one idea."""
    import yaml

    seen, pool = set(), []
    for t in sorted(trials, key=lambda t: t.number):
        if t.state.name != "COMPLETE" or t.values[1] > budget or t.user_attrs["key"] in seen:
            continue
        seen.add(t.user_attrs["key"])
        pool.append(t)
    chosen = []
    for front in _pareto_fronts([(t.values[0], t.values[1]) for t in pool]):
        groups: dict[tuple[str, str], list] = {}
        for i in sorted(front, key=lambda i: -pool[i].values[0]):
            cfg = yaml.safe_load(pool[i].user_attrs["config"])
            groups.setdefault((cfg["backbone"]["block"], cfg["neck"]["block"]), []).append(pool[i])
        queues = list(groups.values())
        while queues and len(chosen) < k:
            for q in list(queues):
                if len(chosen) < k:
                    chosen.append(q.pop(0))
                if not q:
                    queues.remove(q)
        if len(chosen) >= k:
            break
    return chosen


# -- proxy stage -------------------------------------------------------------------------------
def config_hash(key: str) -> str:
    return hashlib.sha1(key.encode()).hexdigest()[:12]


def _proxy_trainable(config: dict[str, Any]) -> None:
    """Ray Tune function trainable: one proxy training, reporting AP after every epoch."""
    from ray import tune

    from evaluators.train import train_from_config
    from search_spaces import parse_yaml

    o, job = config["options"], config["trial"]

    def report(epoch: int, metrics: dict[str, Any]) -> None:
        tune.report({"epoch": epoch, "AP": float(metrics.get("AP") or 0.0), "AP50": float(metrics.get("AP50") or 0.0)})

    result = train_from_config(
        parse_yaml(job["config"]),
        data=o["data"],
        epochs=o["epochs"],
        img_size=o["img_size"],
        width_mult=o["width_mult"],
        images=o["images"],
        seed=o["seed"],
        out_dir=job["out_dir"],
        data_root=o["data_root"],
        num_threads=o["threads"],
        progress=False,
        report=report,
    )
    if result.get("status") == "failed":
        tune.report({"epoch": -1, "AP": 0.0, "failed": result.get("reason", "failed")})


def _tune_callback(study, pending: dict[int, Any], epochs: int, bar: Any):  # noqa: ANN001, ANN202
    """Tells Optuna as each Ray trial ends, in the driver, so a kill loses nothing finished."""
    import optuna
    from ray.tune import Callback

    class OptunaTeller(Callback):
        def on_trial_result(self, iteration, trials, trial, result, **info):  # noqa: ANN001, ANN003
            if result.get("epoch", 0) > 0:
                bar.set_postfix_str(
                    f"trial {trial.config['trial']['number']} epoch {result['epoch']} AP {result['AP']:.3f}"
                )

        def on_trial_complete(self, iteration, trials, trial, **info):  # noqa: ANN001, ANN003
            number = trial.config["trial"]["number"]
            ot = pending.pop(number, None)
            if ot is None:
                return
            last = trial.last_result or {}
            if "failed" in last:
                ot.set_user_attr("reason", str(last["failed"]))
                study.tell(ot, state=optuna.trial.TrialState.FAIL)
            elif last.get("epoch", 0) >= epochs:
                ot.set_user_attr("AP50", last.get("AP50"))
                study.tell(ot, [float(last["AP"]), ot.user_attrs["flops"]])
            else:
                ot.set_user_attr("last_AP", last.get("AP"))
                ot.set_user_attr("epochs_done", last.get("epoch", 0))
                ot.set_user_attr("reason", "stopped early by ASHA")
                study.tell(ot, state=optuna.trial.TrialState.PRUNED)
            bar.update(1)

        def on_trial_error(self, iteration, trials, trial, **info):  # noqa: ANN001, ANN003
            ot = pending.pop(trial.config["trial"]["number"], None)
            if ot is None:
                return
            reason = getattr(trial, "error_msg", None) or "the training raised an exception"
            ot.set_user_attr("reason", str(reason).strip().splitlines()[-1][:500] if reason else "error")
            study.tell(ot, state=optuna.trial.TrialState.FAIL)
            bar.update(1)

    return OptunaTeller()


def proxy_stage(storage, opts: SearchOptions, chosen: list, progress: bool = True):  # noqa: ANN001, ANN201
    import optuna

    from search_spaces import parse_yaml
    from search_spaces.space import SPACES

    space = SPACES[opts.space]
    study = optuna.create_study(
        study_name=opts.name, storage=storage, directions=["maximize", "minimize"], load_if_exists=True
    )
    study.set_metric_names(["AP", "flops"])
    _fail_interrupted(study)
    finished = {
        t.user_attrs.get("key")
        for t in study.get_trials(deepcopy=False)
        if t.state.name in FINISHED or (t.state.name == "FAIL" and not t.user_attrs.get("interrupted"))
    }
    todo = [t for t in chosen if t.user_attrs["key"] not in finished]
    if not todo:
        return study
    pending: dict[int, Any] = {}
    ray_trials = []
    for cheap in todo:
        cfg = parse_yaml(cheap.user_attrs["config"])
        study.enqueue_trial(space.params_of(cfg), skip_if_exists=False)
        ot = study.ask()
        assert space.suggest(ot) == cfg
        ot.set_user_attr("config", cheap.user_attrs["config"])
        ot.set_user_attr("key", cheap.user_attrs["key"])
        ot.set_user_attr("flops", cheap.values[1])
        ot.set_user_attr("params", cheap.user_attrs["params"])
        ot.set_user_attr("metrics", cheap.user_attrs["metrics"])
        ot.set_user_attr("cheap_trial", cheap.number)
        ot.set_user_attr("cheap_score", cheap.values[0])
        _mark_constraint(study, ot, cheap.values[1] - opts.budget)
        pending[ot.number] = ot
        out_dir = (opts.run_dir / "trials" / config_hash(cheap.user_attrs["key"])).resolve()
        ray_trials.append({"number": ot.number, "config": cheap.user_attrs["config"], "out_dir": str(out_dir)})
    bar = _bar(len(chosen), "proxy stage", progress, initial=len(chosen) - len(todo))
    try:
        _run_tune(opts, ray_trials, study, pending, bar)
    finally:
        bar.close()
    return study


def _run_tune(opts: SearchOptions, ray_trials: list[dict[str, Any]], study, pending, bar) -> None:  # noqa: ANN001
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    if not ray.is_initialized():
        address = opts.ray_address or os.environ.get("RAY_ADDRESS")
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=os.cpu_count(), **kwargs)
    cpus = max(1, int(ray.cluster_resources().get("CPU", 1)) // opts.workers)
    options = {
        "data": str(Path(opts.data).resolve()) if opts.data != "shapes" else "shapes",
        "epochs": opts.epochs,
        "img_size": opts.img_size,
        "width_mult": opts.width_mult,
        "images": opts.images,
        "seed": opts.seed,
        "threads": cpus,
        "data_root": str(Path(opts.runs_dir).resolve()),
    }
    param_space = {"options": options, "trial": tune.grid_search(ray_trials)}
    # max_t one past the last epoch: ASHA only ever stops trials early; a trial that reaches its
    # last epoch ends by returning, so "completed" and "stopped by ASHA" stay distinguishable.
    scheduler = ASHAScheduler(
        metric="AP",
        mode="max",
        time_attr="training_iteration",
        max_t=opts.epochs + 1,
        grace_period=max(1, opts.epochs // 3),
    )
    tuner = tune.Tuner(
        tune.with_resources(_proxy_trainable, {"cpu": cpus}),
        param_space=param_space,
        tune_config=tune.TuneConfig(
            scheduler=scheduler,
            max_concurrent_trials=opts.workers,
            reuse_actors=False,
            trial_dirname_creator=lambda t: f"trial_{t.config['trial']['number']}",
        ),
        run_config=tune.RunConfig(
            name=f"tune-{int(time.time())}",
            storage_path=str((opts.run_dir / "ray").resolve()),
            verbose=0,
            callbacks=[_tune_callback(study, pending, opts.epochs, bar)],
            failure_config=tune.FailureConfig(max_failures=1),
        ),
    )
    tuner.fit()


# -- outputs -----------------------------------------------------------------------------------
def trained_rows(study) -> list[dict[str, Any]]:  # noqa: ANN001
    """Every trained trial of the proxy study as a plain dict (``summary.json``)."""
    import yaml

    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state.name not in ("COMPLETE", "PRUNED", "FAIL") or t.user_attrs.get("interrupted"):
            continue
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name,
                "AP": t.values[0] if t.values else None,
                "AP50": t.user_attrs.get("AP50"),
                "last_AP": t.user_attrs.get("last_AP"),
                "reason": t.user_attrs.get("reason"),
                "flops": int(t.user_attrs["flops"]),
                "params": t.user_attrs["params"],
                "knobs": t.params,
                "metrics": t.user_attrs["metrics"],
                "config": yaml.safe_load(t.user_attrs["config"]),
            }
        )
    return rows


def pareto_rows(rows: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    done = [r for r in rows if r["state"] == "COMPLETE" and r["flops"] <= budget]
    front = _pareto_fronts([(r["AP"], r["flops"]) for r in done])
    return sorted((done[i] for i in front[0]), key=lambda r: r["flops"]) if front else []


def write_outputs(study, opts: SearchOptions) -> dict[str, Any]:  # noqa: ANN001
    from search_spaces import parse_yaml

    rows = trained_rows(study)
    front = pareto_rows(rows, opts.budget)
    best = max(front, key=lambda r: (r["AP"], -r["flops"])) if front else None
    summary = {"options": opts.identity(), "budget": opts.budget, "trials": rows, "pareto": [r["trial"] for r in front]}
    summary["best_trial"] = best["trial"] if best else None
    if best is not None:
        atomic_write_text(opts.run_dir / "best.yaml", parse_yaml(_yaml_of(study, best["trial"])).to_yaml())
    atomic_write_json(opts.run_dir / "summary.json", summary)
    plot_pareto(rows, front, opts.budget, opts.run_dir / "pareto.png")
    return summary


def _yaml_of(study, number: int) -> str:  # noqa: ANN001
    return study.trials[number].user_attrs["config"]


def plot_pareto(rows: list[dict[str, Any]], front: list[dict[str, Any]], budget: int, path: Path) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    done = [r for r in rows if r["state"] == "COMPLETE"]
    pruned = [r for r in rows if r["state"] == "PRUNED" and r["last_AP"] is not None]
    ax.scatter([r["flops"] / 1e9 for r in done], [r["AP"] for r in done], c="tab:blue", label="trained")
    ax.scatter(
        [r["flops"] / 1e9 for r in pruned], [r["last_AP"] for r in pruned], c="lightgray", label="stopped (last AP)"
    )
    if front:
        ax.plot([r["flops"] / 1e9 for r in front], [r["AP"] for r in front], "o-", c="tab:red", label="Pareto front")
    ax.axvline(budget / 1e9, ls="--", c="k", label="budget")
    ax.set_xlabel("GFLOPs (full size)")
    ax.set_ylabel("proxy box AP")
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    from nas.runio import atomic_write_bytes

    atomic_write_bytes(path, buf.getvalue())


def format_front(summary: dict[str, Any]) -> str:
    by_number = {r["trial"]: r for r in summary["trials"]}
    lines = [f"{'trial':>5}  {'GFLOPs':>7}  {'AP':>6}  {'backbone':<22} {'neck':<22}"]
    for n in summary["pareto"]:
        r = by_number[n]
        mark = " *" if n == summary["best_trial"] else ""
        lines.append(
            f"{n:>5}  {r['flops'] / 1e9:7.1f}  {r['AP']:6.3f}  {_part(r['config']['backbone']):<22} {_part(r['config']['neck']):<22}{mark}"
        )
    return "\n".join(lines)


def _part(p: dict[str, Any]) -> str:
    extra = {
        "prn": f"m={p['mask_fraction']}",
        "csp": f"r={p['split_ratio']},{p['fusion']}",
        "elan": f"r={p['split_ratio']},s={p['elan_stack']}",
    }
    return f"{p['block']} {extra.get(p['block'], '')}".strip()


def _bar(total: int, desc: str, enabled: bool, initial: int = 0):  # noqa: ANN202
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, initial=initial, disable=not enabled, file=sys.stderr, dynamic_ncols=True)


# -- the whole search --------------------------------------------------------------------------
def _quiet_libraries() -> None:
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def search(opts: SearchOptions, progress: bool = True, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Run (or resume) a search and return its summary (also ``runs/<name>/summary.json``).
    Example (about 20 minutes on 2 cores)::

        nas.search(SearchOptions(budget=parse_flops("150GFLOPs"), name="demo"))
    """
    validate_options(opts)
    _quiet_libraries()
    run_dir = opts.run_dir
    existing = run_dir / "search.json"
    if existing.is_file():
        try:
            before = json.loads(existing.read_text())
        except (OSError, json.JSONDecodeError):
            before = None
        if before is not None and before != opts.identity():
            diff = ", ".join(f"{k}={before.get(k)!r}" for k in opts.identity() if before.get(k) != opts.identity()[k])
            raise SearchError(f"{run_dir} was started with {diff}; re-run with the same options or use another --name")
    lock = RunLock(run_dir)
    if not lock.acquire():
        raise SearchError(
            f"{run_dir} is in use by another nas search (lock {lock.path}); wait for it or use another --name"
        )
    try:
        storage = open_storage(opts.storage, run_dir)
        atomic_write_json(existing, opts.identity())
        t0 = time.perf_counter()
        cheap = cheap_stage(storage, opts, progress)
        trials = cheap.get_trials(deepcopy=False)
        feasible = sum(1 for t in trials if t.state.name == "COMPLETE" and t.values[1] <= opts.budget)
        log(
            f"cheap stage: {len(trials)} candidates, {feasible} within {opts.budget / 1e9:g} GFLOPs ({time.perf_counter() - t0:.1f} s)"
        )
        chosen = select_candidates(trials, opts.trials, opts.budget)
        if not chosen:
            raise SearchError(f"no candidate fits the budget of {opts.budget / 1e9:g} GFLOPs; raise --budget")
        study = proxy_stage(storage, opts, chosen, progress)
        summary = write_outputs(study, opts)
        summary["wall_s"] = time.perf_counter() - t0
        log("Pareto front (AP vs FLOPs, * = best.yaml):")
        log(format_front(summary))
        log(f"outputs in {run_dir}/: best.yaml summary.json pareto.png; dashboard: nas dashboard {run_dir}")
        return summary
    finally:
        lock.release()
