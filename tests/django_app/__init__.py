"""A small Django app for the contrib tests: a model, views, URLs."""
