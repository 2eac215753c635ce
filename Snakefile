# LODI: HALOgen + latent overlap diffusion for 21 cm intensity maps (Mishra, Trotta & Viel 2025).
#   snakemake --cores all all                  (embedded synthetic default, config/config.yaml)
#   snakemake --cores all all --configfile config/paper.yaml
#   snakemake --profile slurm all              (cluster; see README "Running on a cluster")
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/halogen.smk"
include: "workflow/rules/lodi.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/study_common.smk"
include: "workflow/rules/study.smk"


rule all:
    default_target: True
    input:
        all_targets(),
