"""rule study_halogen_score: HALOgen's channel metrics of one snapshot."""

from lodi_core.runtime import run_script
from lodi_core.study import score_halogen


def main():
    i = snakemake.input
    score_halogen(i.model, i.predicted, i.grid, snakemake.output[0], snakemake.params.post_threshold)


run_script(main, snakemake.log[0])
