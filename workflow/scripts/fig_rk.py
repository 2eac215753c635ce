"""rule rk: r(k) and P(k) residuals of each method against the target."""

from lodi_core.figures.from_files import plot_rk
from lodi_core.runtime import run_script


def main():
    i, o = snakemake.input, snakemake.output
    plot_rk(i.grid, list(i.volumes), snakemake.params.title, o.pdf, o.png)


run_script(main, snakemake.log[0])
