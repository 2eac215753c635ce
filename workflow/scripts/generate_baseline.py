"""rule generate_baseline: tiling or averaging of independent boxes."""

from lodi_core.generation.jobs import GenerationConfig, run_baseline
from lodi_core.runtime import pick_device, run_script


def main():
    w = snakemake.wildcards
    run_baseline(
        snakemake.input.model,
        snakemake.input.halos,
        snakemake.output[0],
        w.method,
        int(w.seed),
        w.sim,
        GenerationConfig.from_dict(snakemake.params.generation),
        pick_device(snakemake.params.device),
    )


run_script(main, snakemake.log[0], snakemake.threads)
