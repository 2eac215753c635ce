"""rule predict_halos: HALOgen halo channels for a whole box."""

from lodi_core.generation.halos import predict_halos
from lodi_core.io import read_grids, write_grids
from lodi_core.models.halogen import load_halogen
from lodi_core.runtime import pick_device, run_script


def main():
    inf = snakemake.params.inference
    device = pick_device(snakemake.params.device)
    model, meta = load_halogen(snakemake.input.model, device)
    data, attrs = read_grids(snakemake.input.grids, ("dm",))
    halos = predict_halos(model, meta, data["dm"], **inf, progress=True)
    attrs.update({"halos_source": "HALOgen", "halogen_model": snakemake.input.model, "inference": inf})
    write_grids(snakemake.output[0], {"halos": halos}, attrs)


run_script(main, snakemake.log[0], snakemake.threads)
