"""rule dm_grid: rho_DM of a user's DM-only snapshot (bring your own dark matter)."""

from lodi_core.data.grids import GridSpec, dm_only_grid
from lodi_core.io import write_grids
from lodi_core.runtime import pick_device, run_script


def main():
    spec = GridSpec.from_config(snakemake.params.data, snakemake.params.cosmology)
    grids, attrs = dm_only_grid(snakemake.input[0], spec, snakemake.params.n_grid, pick_device(snakemake.params.device))
    write_grids(snakemake.output[0], grids, attrs)


run_script(main, snakemake.log[0], snakemake.threads)
