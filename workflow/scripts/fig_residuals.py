"""rule fig11_residuals: P(k) residuals per test simulation and seed (Fig. 11)."""

from lodi_core.figures.from_files import plot_residuals
from lodi_core.runtime import run_script


def main():
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    plot_residuals(dict(zip(p.simulations, i.grids)), list(i.volumes), p.title, o.pdf, o.png)


run_script(main, snakemake.log[0])
