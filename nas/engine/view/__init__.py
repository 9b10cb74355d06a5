"""``report.html``: a run you can look at (docs/search.md, "The report").

One self-contained page per run, written at the end of every ``nas search`` and by
``nas report runs/NAME``: the Pareto front with the presets measured at the run's recipe, the
cheap stage's candidates against the table the score was fitted on, the winner's anatomy stage
by stage beside the best preset within the budget, the calibration ledger and the provenance.

- :mod:`nas.engine.view.run`: the run folder read back and checked, file by file;
- :mod:`nas.engine.view.references`: the shipped references, matched by recipe; the best preset;
- :mod:`nas.engine.view.anatomy`: a design part by part, two compared, the score's terms;
- :mod:`nas.engine.view.figures`: the matplotlib figures as inline SVG;
- :mod:`nas.engine.view.page`: what each section says; :mod:`nas.engine.view.render`: the page.

It sits beside the two stages (layer 3.3): it reads what they recorded (:mod:`nas.engine.record`)
and the per-stage features and score terms of :mod:`nas.engine.scores`; the driver calls it.
"""

from nas.engine.view.render import REPORT_NAME, write_report

__all__ = ["REPORT_NAME", "write_report"]
