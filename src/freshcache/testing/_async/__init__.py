"""The async contract, hand-written; scripts/unasync.py generates ``_sync/``.

Import the classes from ``freshcache.testing.contract``, not from here.
"""
