# Figures of the paper (Figs. 5-11), statistics beyond it (r(k), T_b PDFs, posterior maps)
# and the metrics tables, for any seed list. One rule per figure:
#   snakemake --cores all results/figures/fig10_power_CV_2.pdf   rebuilds one figure
#   snakemake --cores all figures                                 every figure and metrics.csv
#   snakemake --report results/report.html                        once they exist
# Only figure and metric rules read config["seeds"]: a new seed reruns its generation and the
# figures that use it, never data or training rules. Figures that show one realisation use
# the first seed; Figs. 6 and 7 use the first test simulation.
from types import SimpleNamespace

FIG = f"{RESULTS}/figures"
TEST_SIMS = list(config["simulations"]["test"])
FIRST_SIM = TEST_SIMS[0]
FIRST_SEED = config["seeds"][0]
PAPER_METHODS = ["latent_overlap", "averaging", "tiling"]  # Fig. 5 compares all three
PER_SIMULATION_FIGURES = ["fig5_methods", "fig8_overview", "fig9_halos", "fig10_power", "rk", "tb_pdf", "posterior"]

# What `all` builds from this file (the Snakefile's all_targets() adds it).
FIGURE_TARGETS = (
    expand(f"{FIG}/{{name}}_{{sim}}.pdf", name=PER_SIMULATION_FIGURES, sim=TEST_SIMS)
    + [f"{FIG}/fig6_overlap_pair.pdf", f"{FIG}/fig7_stages.pdf", f"{FIG}/fig11_residuals.pdf"]
    + [f"{RESULTS}/metrics.csv", f"{RESULTS}/metrics_summary.csv"]
)


rule figures:
    """Every figure of this file and the metrics tables."""
    input:
        FIGURE_TARGETS,


rule fig5_methods:
    """Fig. 5: tiling, averaging and latent overlap against the target on the same slab (first
    seed), box corners marked."""
    input:
        grid=f"{RESULTS}/grids/{{sim}}.h5",
        volumes=lambda w: generated_volumes(methods=PAPER_METHODS, sims=[w.sim], seeds=[FIRST_SEED]),
    output:
        pdf=report(f"{FIG}/fig5_methods_{{sim}}.pdf", caption="../report/fig5_methods.rst", category="Generation", subcategory="{sim}"),
        png=f"{FIG}/fig5_methods_{{sim}}.png",
    wildcard_constraints:
        sim=name_regex(TEST_SIMS),
    params:
        title=lambda w: f"{w.sim} ({config['run_name']}, seed {FIRST_SEED})",
    log:
        f"{RESULTS}/logs/figures/fig5_methods_{{sim}}.log",
    resources:
        **cluster_resources(gpu=False),
    conda:
        "../../envs/lodi.yaml"
    script:
        "../scripts/fig_methods.py"


rule fig6_overlap_pair:
    """Fig. 6: the reverse steps of one overlapping pair of boxes, with latent overlap (top)
    and independently (tiling, bottom), on the first test simulation's halo condition."""
    input:
        model=f"{RESULTS}/lodi/model.pt",
        halos=halo_source(SimpleNamespace(sim=FIRST_SIM)),
    output:
        pdf=report(f"{FIG}/fig6_overlap_pair.pdf", caption="../report/fig6_overlap_pair.rst", category="Generation"),
        png=f"{FIG}/fig6_overlap_pair.png",
    params:
        overlap=config["generation"]["overlap"],
        seed=FIRST_SEED,
        device=config["device"],
        title=f"{FIRST_SIM} ({config['run_name']}, seed {FIRST_SEED})",
    log:
        f"{RESULTS}/logs/figures/fig6_overlap_pair.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/fig6_overlap_pair.tsv"
    threads: 4
    retries: 2
    resources:
        **cluster_resources(gpu=True),
    conda:
        "../../envs/lodi.yaml"
    script:
        "../scripts/fig_overlap_pair.py"


rule fig7_stages:
    """Fig. 7: the volume after each of the 8 stages, three orthogonal projections (first
    test simulation, first seed)."""
    input:
        model=f"{RESULTS}/lodi/model.pt",
        states=expand(f"{RESULTS}/generated/{FIRST_SIM}/seed{FIRST_SEED}/state_stage{{stage}}.h5", stage=range(1, 9)),
    output:
        pdf=report(f"{FIG}/fig7_stages.pdf", caption="../report/fig7_stages.rst", category="Generation"),
        png=f"{FIG}/fig7_stages.png",
    params:
        box_size=config["data"]["box_size"],
        title=f"{FIRST_SIM} ({config['run_name']}, seed {FIRST_SEED})",
    log:
        f"{RESULTS}/logs/figures/fig7_stages.log",
    resources:
        **cluster_resources(gpu=False),
    conda:
        "../../envs/lodi.yaml"
    script:
        "../scripts/fig_stages.py"


rule fig8_overview:
    """Fig. 8: dark-matter input, target T_b, tiling and latent overlap (first seed)."""
    input:
        grid=f"{RESULTS}/grids/{{sim}}.h5",
        volumes=lambda w: generated_volumes(methods=["tiling", "latent_overlap"], sims=[w.sim], seeds=[FIRST_SEED]),
    output:
        pdf=report(f"{FIG}/fig8_overview_{{sim}}.pdf", caption="../report/fig8_overview.rst", category="Generation", subcategory="{sim}"),
        png=f"{FIG}/fig8_overview_{{sim}}.png",
    wildcard_constraints:
        sim=name_regex(TEST_SIMS),
    params:
        title=lambda w: f"{w.sim} ({config['run_name']}, seed {FIRST_SEED})",
    log:
        f"{RESULTS}/logs/figures/fig8_overview_{{sim}}.log",
    resources:
        **cluster_resources(gpu=False),
    conda:
        "../../envs/lodi.yaml"
    script:
        "../scripts/fig_overview.py"


rule fig9_halos:
    """Fig. 9: the halo channels of the simulation against HALOgen's prediction, with the
    PDFs of log rho_h (median, 16-84 %)."""
    input:
        grid=f"{RESULTS}/grids/{{sim}}.h5",
        predicted=f"{RESULTS}/halogen/predicted/{{sim}}.h5",
        summary=f"{RESULTS}/halogen/eval/{{sim}}_summary.csv",
        pdf=f"{RESULTS}/halogen/eval/{{sim}}_pdf.csv",
    output:
        pdf=report(f"{FIG}/fig9_halos_{{sim}}.pdf", caption="../report/fig9_halos.rst", category="HALOgen", subcategory="{sim}"),
        png=f"{FIG}/fig9_halos_{{sim}}.png",
    wildcard_constraints:
        sim=name_regex(TEST_SIMS),
    params:
        post_threshold=config["halogen"]["inference"]["post_threshold"],
        title=lambda w: f"{w.sim} ({config['run_name']})",
    log:
        f"{RESULTS}/logs/figures/fig9_halos_{{sim}}.log",
    resources:
        **cluster_resources(gpu=False),
    conda:
        "../../envs/lodi.yaml"
    script:
        "../scripts/fig_halos.py"


rule fig10_power:
    """Fig. 10: P(k) of T_b/<T_b>, target against latent overlap (mean and std over all
    seeds), with the residual and the ±10 % band."""
    input:
        grid=f"{RESULTS}/grids/{{sim}}.h5",
        volumes=lambda w: generated_volumes(methods=["latent_overlap"], sims=[w.sim]),
    output:
        pdf=report(f"{FIG}/fig10_power_{{sim}}.pdf", caption="../report/fig10_power.rst", category="Validation", subcategory="{sim}"),
        png=f"{FIG}/fig10_power_{{sim}}.png",
    wildcard_constraints:
        sim=name_regex(TEST_SIMS),
    params:
        title=lambda w: f"{w.sim} ({config['run_name']})",
    log:
        f"{RESULTS}/logs/figures/fig10_power_{{sim}}.log",
    resources:
        **cluster_resources(gpu=False),
    conda:
        "../../envs/lodi.yaml"
    script:
        "../scripts/fig_power.py"


rule fig11_residuals:
    """Fig. 11: P(k) residuals of latent overlap per test simulation (mean and std over
    seeds) and over all realisations."""
    input:
        grids=expand(f"{RESULTS}/grids/{{sim}}.h5", sim=TEST_SIMS),
        volumes=generated_volumes(methods=["latent_overlap"], sims=TEST_SIMS),
    output:
        pdf=report(f"{FIG}/fig11_residuals.pdf", caption="../report/fig11_residuals.rst", category="Validation"),
        png=f"{FIG}/fig11_residuals.png",
    params:
        simulations=TEST_SIMS,
        title=config["run_name"],
    log:
        f"{RESULTS}/logs/figures/fig11_residuals.log",
    resources:
        **cluster_resources(gpu=False),
    conda:
        "../../envs/lodi.yaml"
    script:
        "../scripts/fig_residuals.py"


rule rk:
    """r(k) between each method's volumes and the target, with the P(k) residuals (mean and
    std over seeds; beyond the paper), the baselines of baselines.smk included."""
    input:
        grid=f"{RESULTS}/grids/{{sim}}.h5",
        volumes=lambda w: generated_volumes(sims=[w.sim]) + BASELINE_VOLUMES[w.sim],
    output:
        pdf=report(f"{FIG}/rk_{{sim}}.pdf", caption="../report/rk.rst", category="Validation", subcategory="{sim}"),
        png=f"{FIG}/rk_{{sim}}.png",
    wildcard_constraints:
        sim=name_regex(TEST_SIMS),
    params:
        title=lambda w: f"{w.sim} ({config['run_name']})",
    log:
        f"{RESULTS}/logs/figures/rk_{{sim}}.log",
    resources:
        **cluster_resources(gpu=False),
    conda:
        "../../envs/lodi.yaml"
    script:
        "../scripts/fig_rk.py"


rule tb_pdf:
    """One-point PDFs of log10 T_b: the target and each method (mean and std over seeds;
    beyond the paper), the baselines included."""
    input:
        grid=f"{RESULTS}/grids/{{sim}}.h5",
        volumes=lambda w: generated_volumes(sims=[w.sim]) + BASELINE_VOLUMES[w.sim],
    output:
        pdf=report(f"{FIG}/tb_pdf_{{sim}}.pdf", caption="../report/tb_pdf.rst", category="Validation", subcategory="{sim}"),
        png=f"{FIG}/tb_pdf_{{sim}}.png",
    wildcard_constraints:
        sim=name_regex(TEST_SIMS),
    params:
        title=lambda w: f"{w.sim} ({config['run_name']})",
    log:
        f"{RESULTS}/logs/figures/tb_pdf_{{sim}}.log",
    resources:
        **cluster_resources(gpu=False),
    conda:
        "../../envs/lodi.yaml"
    script:
        "../scripts/fig_tb_pdf.py"


rule posterior:
    """Posterior mean, standard deviation and z-score of the target over the seeds (latent
    overlap; beyond the paper)."""
    input:
        grid=f"{RESULTS}/grids/{{sim}}.h5",
        volumes=lambda w: generated_volumes(methods=["latent_overlap"], sims=[w.sim]),
    output:
        pdf=report(f"{FIG}/posterior_{{sim}}.pdf", caption="../report/posterior.rst", category="Validation", subcategory="{sim}"),
        png=f"{FIG}/posterior_{{sim}}.png",
    wildcard_constraints:
        sim=name_regex(TEST_SIMS),
    params:
        title=lambda w: f"{w.sim} ({config['run_name']}, latent overlap)",
    log:
        f"{RESULTS}/logs/figures/posterior_{{sim}}.log",
    resources:
        **cluster_resources(gpu=False),
    conda:
        "../../envs/lodi.yaml"
    script:
        "../scripts/fig_posterior.py"


rule metrics:
    """One row per test simulation, seed and method (P(k) residuals, r(k), seams, PDF
    distance, mean T_b), and their mean and std over seeds; one row per test simulation
    for each deterministic baseline (seams NaN: no boxes)."""
    input:
        grids=expand(f"{RESULTS}/grids/{{sim}}.h5", sim=TEST_SIMS),
        volumes=lambda w: generated_volumes(sims=TEST_SIMS) + [v for sim in TEST_SIMS for v in BASELINE_VOLUMES[sim]],
    output:
        metrics=report(f"{RESULTS}/metrics.csv", caption="../report/metrics.rst", category="Metrics"),
        summary=report(f"{RESULTS}/metrics_summary.csv", caption="../report/metrics_summary.rst", category="Metrics"),
    params:
        simulations=TEST_SIMS,
    log:
        f"{RESULTS}/logs/metrics.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/metrics.tsv"
    resources:
        **cluster_resources(gpu=False),
    conda:
        "../../envs/lodi.yaml"
    script:
        "../scripts/metrics.py"
