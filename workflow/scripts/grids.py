"""rule grids: one simulation's snapshots and catalogue -> dm, halos, tb (HDF5)."""

from lodi_core.data.grids import GridSpec, make_grids
from lodi_core.io import write_grids
from lodi_core.runtime import pick_device, run_script


def main():
    spec = GridSpec.from_config(snakemake.params.data, snakemake.params.cosmology)
    device = pick_device(snakemake.params.device)
    grids, attrs = make_grids(snakemake.input.hydro, snakemake.input.groups, snakemake.input.dm_only, spec, device)
    write_grids(snakemake.output[0], grids, attrs)


run_script(main, snakemake.log[0], snakemake.threads)
