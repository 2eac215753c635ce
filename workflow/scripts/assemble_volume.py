"""rule assemble_latent_overlap: the final T_b volume."""

from lodi_core.generation.jobs import GenerationConfig, run_assemble
from lodi_core.runtime import pick_device, run_script


def main():
    w = snakemake.wildcards
    run_assemble(
        snakemake.input.model,
        snakemake.input.halos,
        snakemake.input.state,
        snakemake.output[0],
        int(w.seed),
        w.sim,
        GenerationConfig.from_dict(snakemake.params.generation),
        pick_device(snakemake.params.device),
    )


run_script(main, snakemake.log[0])
