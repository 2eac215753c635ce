"""rule fig10_power: P(k) of T_b/<T_b>, target against latent overlap over seeds (Fig. 10)."""

from lodi_core.figures.from_files import plot_power
from lodi_core.runtime import run_script


def main():
    i, o = snakemake.input, snakemake.output
    plot_power(i.grid, list(i.volumes), snakemake.params.title, o.pdf, o.png)


run_script(main, snakemake.log[0])
