"""rule study_lodi_snapshot: LODI continued from the previous snapshot to this step."""

from lodi_core.runtime import pick_device, run_script
from lodi_core.study import run_lodi_snapshot


def main():
    i, o, p = snakemake.input, snakemake.output, snakemake.params
    run_lodi_snapshot(
        list(i.grids),
        p.lodi,
        int(snakemake.wildcards.step),
        i.get("prev"),
        p.work,
        o.state,
        o.model,
        o.history,
        pick_device(p.device),
        p.expect,
    )


run_script(main, snakemake.log[0], snakemake.threads)
