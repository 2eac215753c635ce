"""Figures: builders from arrays and loaders from the workflow's files. A figure never runs a
model (enforced by the import contracts in pyproject.toml)."""
