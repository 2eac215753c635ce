"""rule plot_ldl_training: the LDL loss curve."""

from lodi_core.figures.from_files import plot_training
from lodi_core.runtime import run_script


def main():
    plot_training(
        snakemake.input[0], f"LDL ({snakemake.config['run_name']})", snakemake.output.pdf, snakemake.output.png
    )


run_script(main, snakemake.log[0])
