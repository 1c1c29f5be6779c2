"""The fault suite: each test injects one fault from the failure model in
docs/architecture.md (its own redis-server where the fault needs one) and
asserts the bound stated there."""
