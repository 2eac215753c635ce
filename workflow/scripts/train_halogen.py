"""rule train_halogen: train (or resume) HALOgen and write the model file."""

from lodi_core.io import save_checkpoint
from lodi_core.models.halogen import HalogenConfig, LossConfig
from lodi_core.runtime import pick_device, run_script
from lodi_core.training.halogen import HalogenTrainConfig, train_halogen


def main():
    cfg = snakemake.params.halogen
    content = train_halogen(
        list(snakemake.input.grids),
        HalogenConfig.from_dict(cfg["network"]),
        HalogenTrainConfig.from_dict(cfg["train"]),
        LossConfig.from_dict(cfg["loss"]),
        checkpoint_path=snakemake.params.checkpoint,
        history_path=snakemake.output.history,
        device=pick_device(snakemake.params.device),
        expect=snakemake.params.expect,
    )
    save_checkpoint(snakemake.output.model, content)


run_script(main, snakemake.log[0], snakemake.threads)
