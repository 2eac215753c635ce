"""Config sections as frozen dataclasses, with one way to build them from the YAML config and
to store them with a model file.

The config files are the one source of every value: ``config/paper.yaml`` holds the paper's
setting, ``config/config.yaml`` the embedded CPU default, and
``workflow/schemas/config.schema.yaml`` documents and checks each key. The dataclasses have no
defaults of their own, so a value can never differ silently between a dataclass and a file;
the exceptions are keys added later with the schema's default (``lodi.train.condition``,
``lodi.train.box_weight_power``, ``lodi.train.cond_drop``, ``lodi.train.background_fraction``,
``lodi.train.halo_model_channel``, ``lodi.train.lr_decay_steps``, ``generation.guidance``,
``halogen.network.head_norm`` and the launch keys ``gpus``,
``nodes``, ``collective_timeout_s``), so older configs still load.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from pathlib import Path

import yaml


def load_config(path) -> dict:
    """A workflow config file (YAML) as a dict."""
    with open(path) as f:
        return yaml.safe_load(f)


class ConfigSection:
    """Mixin for a frozen dataclass holding one section of the config (``SECTION``, dotted, e.g.
    ``"lodi.train"``): YAML lists become tuples (hashable) and go back to lists when stored, so
    a section compares equal to itself after a round trip through a checkpoint."""

    SECTION = ""

    @classmethod
    def from_dict(cls, d: dict):
        """The section from its config mapping; an unknown or missing key is a TypeError naming it."""
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})

    @classmethod
    def from_config(cls, config: dict | str | Path, **overrides):
        """The section ``SECTION`` of a whole config (a dict or a YAML file), keys of the
        dataclass only, with ``overrides`` applied."""
        if not isinstance(config, dict):
            config = load_config(config)
        d = config
        for key in cls.SECTION.split("."):
            d = d[key]
        names = {f.name for f in fields(cls)}
        return cls.from_dict({**{k: v for k, v in d.items() if k in names}, **overrides})

    def to_dict(self, exclude=()) -> dict:
        """Plain types (tuples as lists), leaving out the keys in ``exclude``."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items() if k not in exclude}
