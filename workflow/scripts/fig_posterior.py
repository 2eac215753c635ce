"""rule posterior: posterior mean, std and z-score of the target over the seeds."""

from lodi_core.figures.from_files import plot_posterior
from lodi_core.runtime import run_script


def main():
    i, o = snakemake.input, snakemake.output
    plot_posterior(i.grid, list(i.volumes), snakemake.params.title, o.pdf, o.png)


run_script(main, snakemake.log[0])
