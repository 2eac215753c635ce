"""rule hi_redraw_volume: a synthetic test simulation's T_b with another draw of its HI."""

from lodi_core.generation.baselines import run_hi_redraw_volume
from lodi_core.runtime import pick_device, run_script


def main():
    w, p = snakemake.wildcards, snakemake.params
    run_hi_redraw_volume(
        snakemake.input.grid,
        snakemake.output[0],
        int(w.seed),
        w.sim,
        p.ic_seed,
        p.synthetic,
        p.data,
        p.cosmology,
        pick_device(p.device),
    )


run_script(main, snakemake.log[0], snakemake.threads)
