"""rule fig7_stages: the volume after each generation stage (Fig. 7)."""

from lodi_core.figures.from_files import plot_stages
from lodi_core.runtime import run_script


def main():
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    plot_stages(i.model, list(i.states), float(p.box_size), p.title, o.pdf, o.png)


run_script(main, snakemake.log[0])
