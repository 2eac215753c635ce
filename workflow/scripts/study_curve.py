"""rule study_curve: the learning-curve table and figure of the convergence study."""

from pathlib import Path

import pandas as pd

from lodi_core.figures.from_files import plot_learning_curve
from lodi_core.runtime import run_script
from lodi_core.study import learning_curve, summary


def main():
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    grids = {Path(g).stem: g for g in i.grids}
    table = learning_curve(list(i.scores), list(i.baselines), grids, o.table)
    spectra = pd.concat([pd.read_csv(f) for f in i.spectra], ignore_index=True) if i.spectra else None
    summary(table, o.summary, spectra)
    plot_learning_curve(o.table, p.main, p.title, o.pdf, o.png)


run_script(main, snakemake.log[0])
