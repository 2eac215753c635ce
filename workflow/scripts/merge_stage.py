"""rule merge_stage: partial volume after one stage."""

from lodi_core.generation.jobs import run_merge
from lodi_core.runtime import run_script


def main():
    w = snakemake.wildcards
    run_merge(
        snakemake.input.get("state"),
        list(snakemake.input.shards),
        int(w.stage),
        snakemake.params.n_grid,
        snakemake.params.box,
        snakemake.output[0],
        {"simulation": w.sim, "seed": int(w.seed)},
    )


run_script(main, snakemake.log[0])
