"""rule tb_pdf: one-point PDFs of log10 T_b, target and each method."""

from lodi_core.figures.from_files import plot_tb_pdf
from lodi_core.runtime import run_script


def main():
    i, o = snakemake.input, snakemake.output
    plot_tb_pdf(i.grid, list(i.volumes), snakemake.params.title, o.pdf, o.png)


run_script(main, snakemake.log[0])
