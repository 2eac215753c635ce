"""rule fit_halo_model: HI-to-halo-mass ratio per channel from the training grids."""

from lodi_core.runtime import run_script
from lodi_core.training.baselines import run_fit_halo_model


def main():
    run_fit_halo_model(list(snakemake.input.grids), snakemake.output[0], snakemake.params.expect)


run_script(main, snakemake.log[0])
