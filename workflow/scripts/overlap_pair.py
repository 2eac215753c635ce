"""rule overlap_pair: sample the pair of boxes Fig. 6 shows."""

from lodi_core.generation.jobs import GenerationConfig, run_overlap_pair
from lodi_core.runtime import pick_device, run_script


def main():
    p = snakemake.params
    run_overlap_pair(
        snakemake.input.model,
        snakemake.input.halos,
        snakemake.output[0],
        GenerationConfig.from_dict(p.generation),
        int(p.seed),
        pick_device(p.device),
    )


run_script(main, snakemake.log[0], snakemake.threads)
