"""rule fig6_overlap_pair: the reverse steps of one overlapping pair of boxes (Fig. 6)."""

from lodi_core.figures.from_files import plot_overlap_pair
from lodi_core.runtime import run_script


def main():
    plot_overlap_pair(snakemake.input[0], snakemake.params.title, snakemake.output.pdf, snakemake.output.png)


run_script(main, snakemake.log[0])
