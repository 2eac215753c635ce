"""rule generate_stage: one shard of one latent-overlap stage."""

from lodi_core.generation.jobs import GenerationConfig, run_stage_shard
from lodi_core.runtime import pick_device, run_script


def main():
    w = snakemake.wildcards
    run_stage_shard(
        snakemake.input.model,
        snakemake.input.halos,
        snakemake.input.get("state"),
        int(w.stage),
        int(w.shard),
        GenerationConfig.from_dict(snakemake.params.generation),
        int(w.seed),
        w.sim,
        snakemake.output[0],
        pick_device(snakemake.params.device),
    )


run_script(main, snakemake.log[0], snakemake.threads)
