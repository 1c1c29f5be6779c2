"""Integrations with frameworks, each behind its own extra; they use
freshcache's public names only, and ``import freshcache`` imports none."""
