"""freshcache's benchmark suite: speed as ratios to a baseline taken in the same run.

Run ``python -m bench --help``. Nothing here is imported by the library or its tests.
"""
