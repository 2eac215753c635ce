"""rule train_ldl: train (or resume) the Lagrangian Deep Learning baseline."""
from lodi_core.baselines import LDLConfig, run_train_ldl
from lodi_core.runtime import run_script


def main():
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    run_train_ldl(list(i.snapshots), list(i.grids), LDLConfig.from_dict(p.ldl), o.model, p.checkpoint, o.history, p.expect)


run_script(main, snakemake.log[0], snakemake.threads)
