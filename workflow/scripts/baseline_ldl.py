"""rule ldl_volume: T_b painted by the trained LDL model on a test simulation's particles."""

from lodi_core.generation.baselines import run_ldl_volume
from lodi_core.runtime import run_script


def main():
    i, w = snakemake.input, snakemake.wildcards
    run_ldl_volume(i.model, i.snapshot, i.grid, snakemake.output[0], int(w.seed), w.sim)


run_script(main, snakemake.log[0], snakemake.threads)
