"""rule plot_training: loss curves."""
from lodi_core.runtime import run_script
from lodi_core.training import plot_history


def main():
    plot_history(snakemake.input[0], f"{snakemake.wildcards.model} ({snakemake.config['run_name']})", snakemake.output.pdf, snakemake.output.png)


run_script(main, snakemake.log[0])
