"""rule plot_grids: slices and power spectra of one simulation's grids."""

from lodi_core.figures.builders import grids_figure
from lodi_core.io import read_grids
from lodi_core.runtime import run_script


def main():
    grids, attrs = read_grids(snakemake.input[0])
    grids_figure(grids, attrs, snakemake.wildcards.sim, snakemake.output.pdf, snakemake.output.png)


run_script(main, snakemake.log[0])
