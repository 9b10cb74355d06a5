"""Fuzzing the ``nas`` command: does every bad input end in one clear line and exit 2?

Hypothesis generates cases for every subcommand — ArchConfig YAML files (valid, one field
wrong, not a mapping, truncated, binary, deeply nested, huge numbers, unicode), COCO annotation
files (valid shape, broken structure), damaged run folders, damaged, malformed and malicious
training checkpoints (a pickle whose unpickling would write a file), and argument lists (valid values,
wrong types, out of range, unknown flags) — and runs each through ``nas.cli.main(argv)`` in
this process (fast), and a sample through the real entry point (``python -m nas.cli``) as a
subprocess. Each case is judged:

- invalid input → exit 2, exactly one line on stderr starting ``error:`` and naming the
  problem where the case knows it, no traceback, nothing new left in the case's folder;
- valid input → success (``search``/``dashboard``: the arguments pass validation and reach
  the work, which is stubbed here — no Ray, no server is ever started);
- any input → never a traceback, never Ray started, never code from the input run.

    .venv/bin/python -m benchmarks.fuzz [--cases 2000] [--seed 0] [--subprocess 40] [--train-ok 4]

Prints per-command counts and writes ``runs/bench/fuzz.json``. ``tests/engine/test_reliability_fuzz.py``
runs the same generators on a smaller sample.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from tests.support.fuzz_cases import (
    COMMANDS,
    Fixtures,
    Outcome,
    draw_cases,
    execute,
    judge,
    stubbed_work,
    train_ok_case,
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=2000, help="in-process cases in all (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--subprocess", type=int, default=40, help="of them, also run as a subprocess")
    p.add_argument("--train-ok", type=int, default=4, help="valid tiny trainings (about 3 s each)")
    args = p.parse_args(argv)

    # checkpoint cases each run a tiny training (~2 s): 2 % of the cases, 40 of the default 2000
    weights = {
        "show": 0.28,
        "train": 0.16,
        "checkpoint": 0.02,
        "export": 0.16,
        "analyze": 0.1,
        "search": 0.2,
        "dashboard": 0.1,
    }
    plan = {c: max(1, round(args.cases * w)) for c, w in weights.items()}
    work = Path(tempfile.mkdtemp(prefix="nas-fuzz-"))
    started = time.perf_counter()
    try:
        fx = Fixtures(work)
        cases = [c for cmd, n in plan.items() for c in draw_cases(cmd, n, args.seed)]
        cases += [train_ok_case(p) for p in ("yolor-elan-1-1", "yolor-csp", "yolor-prn", "yolor-v3")[: args.train_ok]]
        rng = random.Random(args.seed)
        sub_idx = set(rng.sample(range(len(cases)), min(args.subprocess, len(cases))))
        stats: dict[str, Counter] = {c: Counter() for c in COMMANDS}
        failures = []
        with stubbed_work():
            for i, case in enumerate(cases):
                # valid search/dashboard cases need the stubs: never as a real subprocess
                sub = i in sub_idx and not (case.command in ("search", "dashboard") and case.expect != "error")
                sub = sub and not any("\0" in a for a in case.argv) and case.label != "tiny training"
                try:
                    res, sres = execute(case, fx, i, subprocess_too=sub)
                except Exception as e:  # noqa: BLE001 - a harness problem is recorded, not hidden
                    res, sres = Outcome(None, "", "", crash=f"harness: {type(e).__name__}: {e}"), None
                s = stats[case.command]
                s["cases"] += 1
                s[f"expect_{case.expect}"] += 1
                s["exit_0" if res.rc == 0 else "exit_2" if res.rc == 2 else "reached" if res.reached else "other"] += 1
                problems = judge(case, res)
                if res.crash:
                    s["tracebacks"] += 1
                if sres is not None:
                    s["subprocess"] += 1
                    sp = judge(case, sres)
                    if sres.rc != res.rc:
                        sp.append(f"subprocess exit {sres.rc} != in-process {res.rc}")
                    if sres.crash:
                        s["tracebacks"] += 1
                    problems += [f"[subprocess] {x}" for x in sp]
                if problems:
                    s["failed"] += 1
                    failures.append(
                        {"command": case.command, "label": case.label, "argv": case.argv, "problems": problems}
                    )
                if (i + 1) % 200 == 0:
                    print(f"  {i + 1}/{len(cases)} cases, {len(failures)} failed", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    total = sum(s["cases"] for s in stats.values())
    tracebacks = sum(s["tracebacks"] for s in stats.values())
    print(
        f"{'command':<10} {'cases':>6} {'valid':>6} {'invalid':>8} {'any':>5} {'exit0':>6} {'exit2':>6} {'reached':>8} {'subproc':>8} {'tracebk':>8} {'failed':>7}"
    )
    for cmd, s in stats.items():
        print(
            f"{cmd:<10} {s['cases']:>6} {s['expect_ok']:>6} {s['expect_error']:>8} {s['expect_any']:>5} {s['exit_0']:>6} "
            f"{s['exit_2']:>6} {s['reached']:>8} {s['subprocess']:>8} {s['tracebacks']:>8} {s['failed']:>7}"
        )
    wall = time.perf_counter() - started
    print(f"{total} cases in {wall:.0f} s: {tracebacks} tracebacks, {len(failures)} failed (target 0)")
    for f in failures[:20]:
        print(f"  FAIL {f['command']} [{f['label']}] {f['argv']}: {f['problems']}")
    from benchmarks.lib.common import write_result

    path = write_result(
        "fuzz",
        {
            "cases": total,
            "seed": args.seed,
            "tracebacks": tracebacks,
            "failed": len(failures),
            "wall_s": round(wall, 1),
            "per_command": {c: dict(s) for c, s in stats.items()},
            "failures": failures[:100],
        },
    )
    print(f"-> {path}")
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
