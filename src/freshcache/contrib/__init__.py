"""Integrations with other libraries, each behind its own extra.

They use freshcache's public names only, and ``import freshcache`` imports
none of them (nor the libraries they need).
"""
