"""rule study_halogen_snapshot: HALOgen continued from the previous snapshot to this epoch."""

from lodi_core.runtime import pick_device, run_script
from lodi_core.study import run_halogen_snapshot


def main():
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    run_halogen_snapshot(
        list(i.grids),
        p.halogen,
        int(snakemake.wildcards.epoch),
        i.get("prev"),
        p.work,
        o.state,
        o.model,
        o.history,
        pick_device(p.device),
        p.expect,
    )


run_script(main, snakemake.log[0], snakemake.threads)
