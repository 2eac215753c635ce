"""rule study_lodi_score: one held-out volume by latent overlap with a LODI snapshot, scored."""

from lodi_core.runtime import pick_device, run_script
from lodi_core.study import score_lodi


def main():
    i, p, w = snakemake.input, snakemake.params, snakemake.wildcards
    labels = {"variant": w.variant, "condition": w.condition}
    o = snakemake.output
    score_lodi(
        i.model, i.halos, i.grid, o.row, p.generation, int(w.seed), w.sim, pick_device(p.device), labels, o.spectra
    )


run_script(main, snakemake.log[0], snakemake.threads)
