"""meshfit's benchmarks: each module one benchmark, runnable alone (``python -m bench.NAME``).

``python -m bench.run_all`` (``make bench``) runs them all. Every target is a
ratio measured in one run with the two sides interleaved, because the machine
is shared and noisy; absolute figures are reported for context. Results go to
stdout as a table and to ``bench/results/<name>.json``.
"""
