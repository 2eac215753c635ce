"""A small HALOgen training run as its own process (what rule train_halogen does), for the
interruption tests: python train_job.py GRID CHECKPOINT OUT."""

import sys
from pathlib import Path

import torch

from lodi_core.io import save_checkpoint
from lodi_core.models.halogen import HalogenConfig, LossConfig
from lodi_core.runtime import run_script
from lodi_core.training.halogen import HalogenTrainConfig, train_halogen

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from grid_data import tiny  # noqa: E402

torch.set_num_threads(1)
grid, checkpoint, out = sys.argv[1:4]


def main():
    cfg = tiny(
        HalogenTrainConfig, window=16, train_stride=8, batch_size=4, epochs=4, warm_epochs=1, cycle_epochs=2, bf16=False
    )
    content = train_halogen(
        [grid],
        tiny(HalogenConfig, channels=(8, 8, 16), bottleneck_channels=16),
        cfg,
        tiny(LossConfig),
        checkpoint,
        out + ".csv",
        torch.device("cpu"),
        progress=False,
    )
    save_checkpoint(out, content)


run_script(main)
