"""rule calibrate_lodi: the LODI model file with its T_b calibration."""

from lodi_core.generation.jobs import GenerationConfig, calibrate_lodi
from lodi_core.io import save_checkpoint
from lodi_core.runtime import pick_device, run_script


def main():
    i, p = snakemake.input, snakemake.params
    content = calibrate_lodi(
        i.model,
        list(i.halos),
        list(i.grids),
        GenerationConfig.from_dict(p.generation),
        int(p.samples),
        pick_device(p.device),
        level=p.level,
        progress=True,
    )
    save_checkpoint(snakemake.output[0], content)


run_script(main, snakemake.log[0], snakemake.threads)
