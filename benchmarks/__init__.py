"""The benchmarks: ``python -m benchmarks.<script>`` studies and speed checks that print their
figures and write ``runs/bench/*.json``. They are clients of the product (``nas``,
``search_spaces``, ``evaluators``), which never imports them; what more than one script needs
is in :mod:`benchmarks.lib`."""
