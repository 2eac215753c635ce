"""rule fig8_overview: dark matter, target T_b, tiling and latent overlap (Fig. 8)."""

from lodi_core.figures.from_files import plot_overview
from lodi_core.runtime import run_script


def main():
    i, o = snakemake.input, snakemake.output
    plot_overview(i.grid, list(i.volumes), snakemake.params.title, o.pdf, o.png)


run_script(main, snakemake.log[0])
