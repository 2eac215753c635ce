"""rule halo_model_volume: T_b painted by the halo model on HALOgen's or the true halos."""

from lodi_core.generation.baselines import run_halo_model_volume
from lodi_core.runtime import run_script


def main():
    w = snakemake.wildcards
    run_halo_model_volume(
        snakemake.input.model, snakemake.input.halos, snakemake.output[0], w.baseline, int(w.seed), w.sim
    )


run_script(main, snakemake.log[0])
