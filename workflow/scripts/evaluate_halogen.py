"""rule evaluate_halogen: HALOgen's halo channels against the simulation's."""

from lodi_core.analysis.halogen_eval import evaluate_halos
from lodi_core.io import read_grids, write_csv
from lodi_core.runtime import run_script


def main():
    pred, attrs = read_grids(snakemake.input.predicted, ("halos",))
    target, _ = read_grids(snakemake.input.grids, ("halos",))
    tables = evaluate_halos(
        pred["halos"], target["halos"], float(attrs["box_size"]), floor=10.0**snakemake.params.post_threshold
    )
    for name, table in tables.items():
        write_csv(table, snakemake.output[name])


run_script(main, snakemake.log[0])
