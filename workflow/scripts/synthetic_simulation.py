"""rule synthetic_simulation: one synthetic simulation in the CAMELS layout."""

from pathlib import Path

from lodi_core.data.synthetic import make_simulation
from lodi_core.physics.cosmology import Cosmology
from lodi_core.runtime import pick_device, run_script


def main():
    syn = snakemake.params.synthetic
    root = Path(snakemake.output.hydro).parents[5]
    paths = make_simulation(
        root,
        snakemake.wildcards.sim,
        snakemake.params.seed,
        n_particles=syn["n_particles"],
        box_size=snakemake.params.box_size,
        cosmology=Cosmology(**snakemake.params.cosmology),
        redshift=snakemake.params.redshift,
        a_start=syn["a_start"],
        n_steps=syn["n_steps"],
        mesh_factor=syn["mesh_factor"],
        device=pick_device(snakemake.params.device),
        progress=True,
    )
    for key in ("hydro", "groups", "dm_only"):
        if Path(paths[key]).resolve() != Path(snakemake.output[key]).resolve():
            raise RuntimeError(f"synthetic generator wrote {paths[key]}, the workflow expects {snakemake.output[key]}")


run_script(main, snakemake.log[0], snakemake.threads)
