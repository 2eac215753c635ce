"""rule calibrate_halogen: the HALOgen model file with its mass calibration."""

from lodi_core.generation.halos import calibrate_halogen
from lodi_core.io import save_checkpoint
from lodi_core.models.halogen import load_halogen
from lodi_core.runtime import pick_device, run_script


def main():
    model, meta = load_halogen(snakemake.input.model, pick_device(snakemake.params.device))
    content = calibrate_halogen(
        model, meta, list(snakemake.input.grids), snakemake.params.inference, snakemake.params.method
    )
    save_checkpoint(snakemake.output[0], content)


run_script(main, snakemake.log[0], snakemake.threads)
