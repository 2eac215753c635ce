"""rule metrics: results/metrics.csv (one row per simulation, seed and method) and its
mean and std over seeds."""

from lodi_core.analysis.metrics import write_metrics
from lodi_core.runtime import run_script


def main():
    i, o = snakemake.input, snakemake.output
    write_metrics(dict(zip(snakemake.params.simulations, i.grids)), list(i.volumes), o.metrics, o.summary)


run_script(main, snakemake.log[0])
