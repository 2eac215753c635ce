"""Config sections as frozen dataclasses, with one way to build them from the YAML config and
to store them with a model file."""

from __future__ import annotations

from dataclasses import asdict


class ConfigSection:
    """Mixin for a frozen dataclass holding one section of the config: YAML lists become
    tuples (hashable, like the defaults) and go back to lists when stored, so a section
    compares equal to itself after a round trip through a checkpoint."""

    @classmethod
    def from_dict(cls, d: dict):
        """The section from its config mapping; an unknown key is a TypeError naming it."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    def to_dict(self, exclude=()) -> dict:
        """Plain types (tuples as lists), leaving out the keys in ``exclude``."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items() if k not in exclude}
