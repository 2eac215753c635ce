"""rule train_lodi: train (or resume) LODI and write the model file."""

from lodi_core.io import save_checkpoint
from lodi_core.models.unet import DenoiserConfig
from lodi_core.models.vdm import VDMConfig
from lodi_core.runtime import pick_device, run_script
from lodi_core.training.lodi import LodiTrainConfig, train_lodi


def main():
    cfg = snakemake.params.lodi
    content = train_lodi(
        list(snakemake.input.grids),
        DenoiserConfig.from_dict(cfg["network"]),
        VDMConfig.from_dict(cfg["vdm"]),
        LodiTrainConfig.from_dict(cfg["train"]),
        checkpoint_path=snakemake.params.checkpoint,
        history_path=snakemake.output.history,
        device=pick_device(snakemake.params.device),
        expect=snakemake.params.expect,
        halo_files=list(snakemake.input.halos),
    )
    save_checkpoint(snakemake.output.model, content)


run_script(main, snakemake.log[0], snakemake.threads)
