"""rule fig6_overlap_pair: the reverse steps of one overlapping pair of boxes (Fig. 6)."""
from lodi_core.plots import plot_overlap_pair
from lodi_core.runtime import pick_device, run_script


def main():
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    plot_overlap_pair(i.model, i.halos, int(p.overlap), int(p.seed), pick_device(p.device), p.title, o.pdf, o.png)


run_script(main, snakemake.log[0], snakemake.threads)
