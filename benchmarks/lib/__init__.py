"""The benchmarks' own library: what more than one study script needs, written once.

The scripts in ``benchmarks/`` are clients of the product (``nas``, ``search_spaces``,
``evaluators``) and of this package; the product never imports either. Modules, lowest first
(none imports a script, and none imports one listed after it):

- :mod:`~benchmarks.lib.common`: ``runs/bench``, timing medians, writing a result file;
- :mod:`~benchmarks.lib.stats`: the studies' statistics (bootstrap CIs, rank models, ICC,
  hypervolume) on top of the product's ``ranks``/``kendall_tau``;
- :mod:`~benchmarks.lib.features`: the features the studies fit on, and which enter as logs;
- :mod:`~benchmarks.lib.designs`: every draw of designs for a study (the rank studies, the
  proxy-noise list, the gradient-path table, the random arm);
- :mod:`~benchmarks.lib.recipes`: the studies' proxy recipes and result names;
- :mod:`~benchmarks.lib.study`: the one study runner (jobs, a folder per job, run once, mark
  done, shard, collect rows).
"""
