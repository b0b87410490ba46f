"""dockpool benchmarks: every hot path against a reference measured in the same run.

Run all with ``python -m bench`` (or ``make bench``); results go to bench/results/.
"""
