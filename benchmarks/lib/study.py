"""The one study runner: a study is a list of jobs, each run once in a folder of its own.

A file in the job's folder marks the job done, so a study resumes across sessions (a training
cut short resumes from the trainer's checkpoint in the same folder) and splits between workers:
``--shard i/n`` runs the jobs ``j`` with ``j mod n == i`` (:class:`Shard`, :func:`pending`).
There are two kinds of done marker, and the folder layouts of studies already on disk are
those below (a half-done study resumes after any change here only if they stay so):

- **the runner's**: the job's row, written atomically when the job is over (:func:`run_once`;
  ``<root>/<scale>/<arm or fidelity>/<design>/seed<k>/scores.json`` for the proxy-noise study and
  the gradient-path table). :func:`collect` merges every folder's row into the study's committed
  ``benchmarks/data/*.jsonl`` (one sorted JSON row per line), :func:`read_rows` reads it back;
- **the trainer's**: ``metrics.json`` once its status is ``ok`` or ``failed``
  (:func:`finished_metrics`). The config-keyed trainings of the rank-study recipes live at
  ``<study>/<hash of config and recipe>/seed<k>/`` (:func:`cand_dir`, :func:`train`,
  :func:`finished`): the rank study, the fidelity study, the live search-efficiency study and
  winner-vs-presets share them, so a config trained at a recipe by any of them is trained once.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from benchmarks.lib.common import BENCH_DIR
from benchmarks.lib.recipes import make_recipe, recipe_tag
from nas.core.runio import atomic_write_text

J = TypeVar("J")
#: the first (uniform-space) rank study's folder: where the studies that reuse rank-study
#: trainings look by default
RANK_STUDY_DIR = BENCH_DIR / "rank_study"
#: the job folders of a runner-marked study under its root: scale / arm or fidelity / design / seed
JOB_ROWS = "*/*/*/seed*/scores.json"


# -- which jobs this worker runs ----------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Shard:
    """Worker ``index`` of ``count``: it runs the jobs ``j`` with ``j mod count == index``.

    >>> [j for j in range(5) if Shard(1, 2).owns(j)], parse_shard("0/3"), parse_shard(None)
    ([1, 3], Shard(index=0, count=3), Shard(index=0, count=1))
    """

    index: int = 0
    count: int = 1

    def owns(self, j: int) -> bool:
        return j % self.count == self.index


def parse_shard(text: str | None) -> Shard:
    """``i/n`` as a :class:`Shard` (None: the whole study); a :class:`ValueError` unless ``0 <= i < n``."""
    if text is None:
        return Shard()
    index, count = (int(v) for v in text.split("/"))
    if not 0 <= index < count:
        raise ValueError(text)
    return Shard(index, count)


def shard_arg(p: argparse.ArgumentParser, text: str | None) -> Shard:
    """``--shard`` parsed, or the command refused in one line (exit 2)."""
    try:
        return parse_shard(text)
    except ValueError:
        p.exit(2, f"error: --shard {text!r} is not accepted; accepted: i/n with 0 <= i < n\n")


def deadline_passed(deadline: str | None, now: float | None = None) -> bool:
    """Whether the UTC clock time ``HH:MM`` has passed: the nearest occurrence of it (within
    ±12 h of now) is taken, so ``00:05`` set at 22:50 is 75 min ahead, not 22 h behind (a plain
    string comparison stopped a study started before midnight at once).

    >>> deadline_passed("00:05", now=22 * 3600 + 50 * 60), deadline_passed("22:00", now=22 * 3600 + 50 * 60)
    (False, True)
    """
    if not deadline:
        return False
    hh, mm = (int(v) for v in deadline.split(":"))
    t = time.time() if now is None else now
    ahead = (hh * 3600 + mm * 60 - t % 86400) % 86400  # seconds to the next occurrence
    return ahead > 43200 or ahead == 0


def walk(
    jobs: Sequence[J], shard: Shard | None, done: Callable[[J], bool], deadline: str | None = None
) -> Iterator[tuple[int, J, bool]]:
    """Every job of the study in order, with its index and whether this worker runs it now: it
    is in the worker's ``shard`` (None: a reader, which runs none) and not ``done``. Past the
    UTC ``deadline`` no further job runs, said in one line. Lazy: a job's ``done`` is asked when
    the walk reaches it, after the jobs before it have run.

    >>> [(j, run) for j, _, run in walk("abcd", Shard(0, 2), done=lambda job: job == "c")]
    [(0, True), (1, False), (2, False), (3, False)]
    """
    stopped = False
    for j, job in enumerate(jobs):
        run = not stopped and shard is not None and shard.owns(j) and not done(job)
        if run and deadline_passed(deadline):
            print(f"deadline {deadline} UTC reached: stopping", flush=True)
            stopped, run = True, False
        yield j, job, run


def pending(
    jobs: Sequence[J], shard: Shard, done: Callable[[J], bool], deadline: str | None = None
) -> Iterator[tuple[int, J]]:
    """The jobs this worker runs (see :func:`walk`), each with its index in the whole study.

    >>> list(pending(["a", "b", "c", "d"], Shard(0, 2), done=lambda job: job == "c"))
    [(0, 'a')]
    """
    for j, job, run in walk(jobs, shard, done, deadline):
        if run:
            yield j, job


# -- one job, once -----------------------------------------------------------------------------
def mark_done(marker: Path, row: dict[str, Any], indent: int = 1) -> None:
    """Write a finished job's row atomically: its presence is what marks the job done."""
    atomic_write_text(marker, json.dumps(row, indent=indent))


def run_once(marker: Path, run: Callable[[], dict[str, Any]], indent: int = 1) -> dict[str, Any]:
    """The row of the job that ``marker`` marks done: read back if it is, else ``run()`` and
    marked done with its row."""
    if marker.exists():
        return json.loads(marker.read_text())
    row = run()
    mark_done(marker, row, indent)
    return row


def finished_metrics(path: Path) -> dict[str, Any] | None:
    """A training's ``metrics.json`` once it has ended (ok or failed), else None."""
    if not path.exists():
        return None
    m = json.loads(path.read_text())
    return m if m.get("status") in ("ok", "failed") else None


def timed_training(design: dict[str, Any], recipe: Any, folder: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train (or resume from its checkpoint) a registered ``design`` by ``recipe`` into ``folder``
    at 1 thread: the trainer's result and the seconds of the training alone (``cpu_s``,
    ``wall_s``); the data load, done once per process in a search's worker, is timed apart
    (``data_cpu_s``). ``resumed``: it went on from a checkpoint, so its seconds are only the rest
    (not a cost figure)."""
    import torch

    from evaluators.train import recipe_data, train_from_config
    from search_spaces import from_dict

    torch.set_num_threads(1)
    resumed = (folder / "checkpoint.pt").exists()
    load = time.process_time()
    recipe_data("shapes", recipe)
    load = time.process_time() - load
    cpu, wall = time.process_time(), time.perf_counter()
    result = train_from_config(from_dict(design["config"]), recipe, out_dir=folder, progress=False, num_threads=1)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return result, {"cpu_s": round(cpu, 2), "data_cpu_s": round(load, 2), "resumed": resumed, "wall_s": round(wall, 2)}


# -- the config-keyed trainings of the rank-study recipes ---------------------------------------
def cand_dir(cfg: Any, recipe: dict[str, Any], study: Path = RANK_STUDY_DIR) -> Path:
    """The folder of ``cfg``'s trainings at a study recipe: a hash of its key and the recipe's tag."""
    h = hashlib.sha1(f"{cfg.key()}|{recipe_tag(recipe)}".encode()).hexdigest()[:12]
    return study / h


def train(cfg: Any, recipe: dict[str, Any], seed: int, threads: int, study: Path = RANK_STUDY_DIR) -> dict[str, Any]:
    """Train (or resume) ``cfg`` at a study recipe and seed in ``<cand_dir>/seed<k>/``."""
    from evaluators.train import train_from_config

    return train_from_config(
        cfg,
        make_recipe(recipe, seed),
        out_dir=cand_dir(cfg, recipe, study) / f"seed{seed}",
        progress=False,
        num_threads=threads,
    )


def finished(cfg: Any, recipe: dict[str, Any], seed: int, study: Path = RANK_STUDY_DIR) -> dict[str, Any] | None:
    """The ended training of ``cfg`` at a study recipe and seed (its ``metrics.json``), else None."""
    return finished_metrics(cand_dir(cfg, recipe, study) / f"seed{seed}" / "metrics.json")


# -- registered designs and collected rows ------------------------------------------------------
def write_once(path: Path, doc: dict[str, Any]) -> dict[str, Any]:
    """Write a pre-registered design list ``doc`` to ``path`` unless it is there: the same list
    is returned as the file holds it, a different one refused (a registration is never rewritten)."""
    if path.exists():
        old = json.loads(path.read_text())
        if old != json.loads(json.dumps(doc)):
            raise SystemExit(f"{path} holds another design list; the registered list is never rewritten")
        return old
    atomic_write_text(path, json.dumps(doc, indent=1) + "\n")
    return doc


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a study's ``.jsonl`` (none if it is missing)."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def collect(
    root: Path, path: Path, key: Callable[[dict[str, Any]], Any], pattern: str = JOB_ROWS
) -> list[dict[str, Any]]:
    """Merge the row of every finished job under ``root`` (its marker matching ``pattern``) into
    ``path`` (one JSON row per training, keys sorted; rows already there are kept, so results
    of other machines survive; rewritten atomically) and return all rows, sorted by ``key`` (a
    row's identity)."""
    rows = {key(r): r for r in read_rows(path)}
    for f in sorted(root.glob(pattern)):
        r = json.loads(f.read_text())
        rows[key(r)] = r
    ordered = sorted(rows.values(), key=key)
    atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in ordered))
    return ordered
