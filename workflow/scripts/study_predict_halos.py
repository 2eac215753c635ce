"""rule study_predict_halos: a HALOgen snapshot applied to a held-out simulation."""

from lodi_core.runtime import pick_device, run_script
from lodi_core.study import run_predict_halos


def main():
    i, p = snakemake.input, snakemake.params
    run_predict_halos(
        i.model, i.grid, snakemake.output[0], p.inference, pick_device(p.device), list(i.calibration_grids), p.method
    )


run_script(main, snakemake.log[0], snakemake.threads)
