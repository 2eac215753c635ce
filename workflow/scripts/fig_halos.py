"""rule fig9_halos: halo channels, target against HALOgen, with their PDFs (Fig. 9)."""

from lodi_core.figures.from_files import plot_halos
from lodi_core.runtime import run_script


def main():
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    plot_halos(i.grid, i.predicted, i.summary, i.pdf, p.title, o.pdf, o.png, floor_log=float(p.post_threshold))


run_script(main, snakemake.log[0])
