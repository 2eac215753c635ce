"""rule fig5_methods: tiling, averaging and latent overlap against the target (Fig. 5)."""

from lodi_core.figures.from_files import plot_methods
from lodi_core.runtime import run_script


def main():
    i, o = snakemake.input, snakemake.output
    plot_methods(i.grid, list(i.volumes), snakemake.params.title, o.pdf, o.png)


run_script(main, snakemake.log[0])
