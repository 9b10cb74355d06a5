"""docs/glossary.md explains the project's jargon, and the README and every page link a term to
its entry where they first use it (in plain prose: code, headings and link text aside)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.doccheck import anchors, check_glossary, doc_files

ROOT = Path(__file__).resolve().parents[2]
GLOSSARY = ROOT / "docs" / "glossary.md"
#: docs/architecture.md is left to its own checks (tests/docs/test_architecture.py)
PAGES = [p for p in doc_files(ROOT) if p.name not in ("glossary.md", "architecture.md")]

#: glossary anchor -> how a page writes the term
TERMS = {
    "proxy-task": r"\b[Pp]roxy (?:task|scale|AP)s?\b",
    "recipe-v1-and-v2": r"\b[Rr]ecipe v[12]\b",
    "cheap-stage-and-proxy-stage": r"\b[Cc]heap stages?\b|\b[Pp]roxy stages?\b",
    "cheap-score": r"\b[Cc]heap scores?\b",
    "fitted-score": r"\b(?:fitted|gradient-path) score\b",
    "per-stage-space-and-uniform-space": r"\b(?:per-stage|uniform) space\b",
    "block-pattern": r"\bblock patterns?\b",
    "flops-band": r"\bFLOPs bands?\b",
    "fidelity": r"\b(?:(?:[Ll]ow|[Ff]ull|[Ll]owest)[- ])?[Ff]idelit(?:y|ies)\b",
    "rung": r"\b[Rr]ungs?\b",
    "successive-halving": r"\b[Ss]uccessive halving\b",
    "asha": r"\bASHA\b",
    "pareto-front": r"\bPareto fronts?\b",
    "hypervolume": r"\b[Hh]ypervolumes?\b",
    "nsga-ii": r"\bNSGA-II\b",
    "regularised-evolution": r"\b[Rr]egularised (?:\(aging\) )?evolution\b",
    "tpe": r"\bTPE\b",
    "synflow-and-naswot": r"\b(?:[Ss]ynflow|NASWOT)\b",
    "ir-layergraph": r"\bIR\b",
    "weight-average-ema": r"\bweight average\b|\baveraged weights\b|\bEMA\b",
    "winners-curse": r"\bwinner's curse\b",
    "gradient-path": r"\b[Gg]radient[- ]paths?\b",
    "max-shortest-gradient-path": r"\b(?:max(?:imum)? |longest )shortest (?:gradient )?paths?\b|\bmax SGP\b",
    "longest-gradient-path": r"(?<!shortest )\blongest gradient paths?\b|\bLGP\b",
    "gradient-combinations": r"\bgradient combinations?\b",
    "duplicate-gradients-and-gradient-overlap": r"\bduplicated? gradients?\b|\bdup ratio\b|\bgradient overlap\b",
    "prn": r"(?<![-\w])PRN(?![-\w])",
    "csp": r"(?<![-\w])CSP(?:Net)?(?![-\w])",
    "csp-fusion": r"\bfusion (?:first|last)\b|\bno fusion\b",
    "elan": r"(?<![-\w])ELAN(?![-\w])",
    "stop-gradient": r"\b[Ss]top-gradient\b",
    "kendall-tau": r"\bKendall(?:'s)? τ|(?<!seed )(?<!partial )(?<!seed-to-seed )(?<![\w-])τ(?!\w)",
    "spearman-rho": r"\bSpearman(?:'s)? ρ|(?<!\w)ρ(?!\w)",
    "seed-tau": r"\bseed(?:-to-seed)? τ",
    "partial-tau": r"\bpartial τ",
    "icc": r"\bICC(?:\(1\))?",
    "spearmanbrown": r"\bSpearman[–-]Brown\b",
    "confidence-interval-ci": r"\b95 % (?:bootstrap )?CIs?\b|\bbootstrap CIs?\b",
    "permutation-test": r"\bpermutation (?:p|test)\b",
    "holm": r"\bHolm(?:'s)?\b",
    "pre-registered": r"\b[Pp]re-registered\b|\bregistered before training\b",
    "held-out-and-fit-designs": r"\b[Hh]eld[- ]out (?:designs?|set)\b|\bfit (?:set|designs?)\b",
    "ridge-on-ranks": r"\bridge\b",
    "sem": r"\bsem\b",
}


def test_every_term_has_an_entry():
    assert set(TERMS) <= anchors(GLOSSARY.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", PAGES, ids=lambda p: p.name)
def test_each_term_is_linked_where_a_page_first_uses_it(path):
    target = "docs/glossary.md" if path.parent == ROOT else "glossary.md"
    assert check_glossary(path, TERMS, target) == []


def test_the_check_catches_an_unlinked_first_use(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "# ICC\n\nThe [ICC](glossary.md#icc) is high; the `ICC` of code. Then ICC again.\n", encoding="utf-8"
    )
    assert check_glossary(page, {"icc": r"\bICC\b"}, "glossary.md") == []
    page.write_text("# T\n\nThe ICC is high; the [ICC](glossary.md#icc) later.\n", encoding="utf-8")
    problems = check_glossary(page, {"icc": r"\bICC\b"}, "glossary.md")
    assert len(problems) == 1 and "'ICC' is not linked to glossary.md#icc" in problems[0]
