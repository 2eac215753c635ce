"""rule baselines_figure: LODI beside the halo model and LDL (maps and P(k))."""

from lodi_core.figures.from_files import plot_baselines
from lodi_core.runtime import run_script


def main():
    i, o = snakemake.input, snakemake.output
    plot_baselines(i.grid, list(i.volumes), snakemake.params.title, o.pdf, o.png)


run_script(main, snakemake.log[0])
