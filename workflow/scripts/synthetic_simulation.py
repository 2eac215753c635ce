"""rule synthetic_simulation: one synthetic simulation in the CAMELS layout."""

from pathlib import Path

from lodi_core.data.synthetic import make_configured_simulation
from lodi_core.runtime import pick_device, run_script


def main():
    p = snakemake.params
    root = Path(snakemake.output.hydro).parents[5]
    paths = make_configured_simulation(
        root,
        snakemake.wildcards.sim,
        p.seed,
        p.synthetic,
        p.box_size,
        p.redshift,
        p.cosmology,
        device=pick_device(p.device),
        progress=True,
    )
    for key in ("hydro", "groups", "dm_only"):
        if Path(paths[key]).resolve() != Path(snakemake.output[key]).resolve():
            raise RuntimeError(f"synthetic generator wrote {paths[key]}, the workflow expects {snakemake.output[key]}")


run_script(main, snakemake.log[0], snakemake.threads)
