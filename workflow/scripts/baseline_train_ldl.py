"""rule train_ldl: train (or resume) the Lagrangian Deep Learning baseline."""

from lodi_core.models.ldl import LDLConfig
from lodi_core.runtime import run_script
from lodi_core.training.baselines import run_train_ldl


def main():
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    run_train_ldl(
        list(i.snapshots), list(i.grids), LDLConfig.from_dict(p.ldl), o.model, p.checkpoint, o.history, p.expect
    )


run_script(main, snakemake.log[0], snakemake.threads)
