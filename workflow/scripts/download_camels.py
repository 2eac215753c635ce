"""rule download_camels: one CAMELS CV simulation from the public file server."""

from lodi_core.data.camels import download
from lodi_core.runtime import run_script


def main():
    for key, spec in snakemake.params.files.items():
        download(spec["url"], snakemake.output[key], sha256=spec["sha256"])


run_script(main, snakemake.log[0])
