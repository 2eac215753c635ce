# Figures of the paper (Figs. 5-11), statistics beyond it (r(k), T_b PDFs, posterior maps)
# and the metrics tables, for any seed list. One rule per figure:
#   snakemake --cores all results/figures/fig10_power_CV_2.pdf   rebuilds one figure
#   snakemake --cores all figures                                 every figure and metrics.csv
#   snakemake --report results/report.html                        once they exist
# Only figure and metric rules read config["seeds"]: a new seed reruns its generation and the
# figures that use it, never data or training rules. Figures that show one realisation use
# the first seed; Figs. 6 and 7 use the first test simulation.
PAPER_METHODS = ["latent_overlap", "averaging", "tiling"]  # Fig. 5 compares all three
PER_SIMULATION_FIGURES = ["fig5_methods", "fig8_overview", "fig9_halos", "fig10_power", "rk", "tb_pdf", "posterior"]

# What `all` builds from this file (the Snakefile's all_targets() adds it).
FIGURE_TARGETS = (
    expand(figure_file("{name}_{sim}"), name=PER_SIMULATION_FIGURES, sim=TEST_SIMS)
    + [figure_file("fig6_overlap_pair"), figure_file("fig7_stages"), figure_file("fig11_residuals")]
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
        grid=grid_file(),
        volumes=lambda w: generated_volumes(methods=PAPER_METHODS, sims=[w.sim], seeds=[FIRST_SEED]),
    output:
        pdf=report(
            figure_file("fig5_methods_{sim}"),
            caption="../report/fig5_methods.rst",
            category="Generation",
            subcategory="{sim}",
        ),
        png=figure_file("fig5_methods_{sim}", "png"),
    log:
        log_file("figures/fig5_methods_{sim}"),
    wildcard_constraints:
        sim=name_regex(TEST_SIMS),
    conda:
        "../../envs/lodi.yaml"
    resources:
        **cluster_resources(gpu=False),
    params:
        title=lambda w: f"{w.sim} ({config['run_name']}, seed {FIRST_SEED})",
    script:
        "../scripts/fig_methods.py"


rule fig6_overlap_pair:
    """Fig. 6: the reverse steps of one overlapping pair of boxes, with latent overlap (top)
    and independently (tiling, bottom), on the first test simulation's halo condition."""
    input:
        rules.overlap_pair.output,
    output:
        pdf=report(figure_file("fig6_overlap_pair"), caption="../report/fig6_overlap_pair.rst", category="Generation"),
        png=figure_file("fig6_overlap_pair", "png"),
    log:
        log_file("figures/fig6_overlap_pair"),
    conda:
        "../../envs/lodi.yaml"
    resources:
        **cluster_resources(gpu=False),
    params:
        title=f"{FIRST_SIM} ({config['run_name']}, seed {FIRST_SEED})",
    script:
        "../scripts/fig_overlap_pair.py"


rule fig7_stages:
    """Fig. 7: the volume after each of the 8 stages, three orthogonal projections (first
    test simulation, first seed)."""
    input:
        model=lodi_for_tb(),
        states=[state_file(FIRST_SIM, FIRST_SEED, stage) for stage in range(1, 9)],
    output:
        pdf=report(figure_file("fig7_stages"), caption="../report/fig7_stages.rst", category="Generation"),
        png=figure_file("fig7_stages", "png"),
    log:
        log_file("figures/fig7_stages"),
    conda:
        "../../envs/lodi.yaml"
    resources:
        **cluster_resources(gpu=False),
    params:
        box_size=config["data"]["box_size"],
        title=f"{FIRST_SIM} ({config['run_name']}, seed {FIRST_SEED})",
    script:
        "../scripts/fig_stages.py"


rule fig8_overview:
    """Fig. 8: dark-matter input, target T_b, tiling and latent overlap (first seed)."""
    input:
        grid=grid_file(),
        volumes=lambda w: generated_volumes(methods=["tiling", "latent_overlap"], sims=[w.sim], seeds=[FIRST_SEED]),
    output:
        pdf=report(
            figure_file("fig8_overview_{sim}"),
            caption="../report/fig8_overview.rst",
            category="Generation",
            subcategory="{sim}",
        ),
        png=figure_file("fig8_overview_{sim}", "png"),
    log:
        log_file("figures/fig8_overview_{sim}"),
    wildcard_constraints:
        sim=name_regex(TEST_SIMS),
    conda:
        "../../envs/lodi.yaml"
    resources:
        **cluster_resources(gpu=False),
    params:
        title=lambda w: f"{w.sim} ({config['run_name']}, seed {FIRST_SEED})",
    script:
        "../scripts/fig_overview.py"


rule fig9_halos:
    """Fig. 9: the halo channels of the simulation against HALOgen's prediction, with the
    PDFs of log rho_h (median, 16-84 %)."""
    input:
        grid=grid_file(),
        predicted=predicted_halos_file(),
        summary=halogen_eval_file("summary"),
        pdf=halogen_eval_file("pdf"),
    output:
        pdf=report(
            figure_file("fig9_halos_{sim}"),
            caption="../report/fig9_halos.rst",
            category="HALOgen",
            subcategory="{sim}",
        ),
        png=figure_file("fig9_halos_{sim}", "png"),
    log:
        log_file("figures/fig9_halos_{sim}"),
    wildcard_constraints:
        sim=name_regex(TEST_SIMS),
    conda:
        "../../envs/lodi.yaml"
    resources:
        **cluster_resources(gpu=False),
    params:
        post_threshold=config["halogen"]["inference"]["post_threshold"],
        title=lambda w: f"{w.sim} ({config['run_name']})",
    script:
        "../scripts/fig_halos.py"


rule fig10_power:
    """Fig. 10: P(k) of T_b/<T_b>, target against latent overlap (mean and std over all
    seeds), with the residual and the ±10 % band."""
    input:
        grid=grid_file(),
        volumes=lambda w: generated_volumes(methods=["latent_overlap"], sims=[w.sim]),
    output:
        pdf=report(
            figure_file("fig10_power_{sim}"),
            caption="../report/fig10_power.rst",
            category="Validation",
            subcategory="{sim}",
        ),
        png=figure_file("fig10_power_{sim}", "png"),
    log:
        log_file("figures/fig10_power_{sim}"),
    wildcard_constraints:
        sim=name_regex(TEST_SIMS),
    conda:
        "../../envs/lodi.yaml"
    resources:
        **cluster_resources(gpu=False),
    params:
        title=lambda w: f"{w.sim} ({config['run_name']})",
    script:
        "../scripts/fig_power.py"


rule fig11_residuals:
    """Fig. 11: P(k) residuals of latent overlap per test simulation (mean and std over
    seeds) and over all realisations."""
    input:
        grids=grid_files(TEST_SIMS),
        volumes=generated_volumes(methods=["latent_overlap"], sims=TEST_SIMS),
    output:
        pdf=report(figure_file("fig11_residuals"), caption="../report/fig11_residuals.rst", category="Validation"),
        png=figure_file("fig11_residuals", "png"),
    log:
        log_file("figures/fig11_residuals"),
    conda:
        "../../envs/lodi.yaml"
    resources:
        **cluster_resources(gpu=False),
    params:
        simulations=TEST_SIMS,
        title=config["run_name"],
    script:
        "../scripts/fig_residuals.py"


rule rk:
    """r(k) between each method's volumes and the target, with the P(k) residuals (mean and
    std over seeds; beyond the paper), the baselines of baselines.smk included."""
    input:
        grid=grid_file(),
        volumes=lambda w: generated_volumes(sims=[w.sim]) + BASELINE_VOLUMES[w.sim],
    output:
        pdf=report(figure_file("rk_{sim}"), caption="../report/rk.rst", category="Validation", subcategory="{sim}"),
        png=figure_file("rk_{sim}", "png"),
    log:
        log_file("figures/rk_{sim}"),
    wildcard_constraints:
        sim=name_regex(TEST_SIMS),
    conda:
        "../../envs/lodi.yaml"
    resources:
        **cluster_resources(gpu=False),
    params:
        title=lambda w: f"{w.sim} ({config['run_name']})",
    script:
        "../scripts/fig_rk.py"


rule tb_pdf:
    """One-point PDFs of log10 T_b: the target and each method (mean and std over seeds;
    beyond the paper), the baselines included."""
    input:
        grid=grid_file(),
        volumes=lambda w: generated_volumes(sims=[w.sim]) + BASELINE_VOLUMES[w.sim],
    output:
        pdf=report(
            figure_file("tb_pdf_{sim}"), caption="../report/tb_pdf.rst", category="Validation", subcategory="{sim}"
        ),
        png=figure_file("tb_pdf_{sim}", "png"),
    log:
        log_file("figures/tb_pdf_{sim}"),
    wildcard_constraints:
        sim=name_regex(TEST_SIMS),
    conda:
        "../../envs/lodi.yaml"
    resources:
        **cluster_resources(gpu=False),
    params:
        title=lambda w: f"{w.sim} ({config['run_name']})",
    script:
        "../scripts/fig_tb_pdf.py"


rule posterior:
    """Posterior mean, standard deviation and z-score of the target over the seeds (latent
    overlap; beyond the paper)."""
    input:
        grid=grid_file(),
        volumes=lambda w: generated_volumes(methods=["latent_overlap"], sims=[w.sim]),
    output:
        pdf=report(
            figure_file("posterior_{sim}"),
            caption="../report/posterior.rst",
            category="Validation",
            subcategory="{sim}",
        ),
        png=figure_file("posterior_{sim}", "png"),
    log:
        log_file("figures/posterior_{sim}"),
    wildcard_constraints:
        sim=name_regex(TEST_SIMS),
    conda:
        "../../envs/lodi.yaml"
    resources:
        **cluster_resources(gpu=False),
    params:
        title=lambda w: f"{w.sim} ({config['run_name']}, latent overlap)",
    script:
        "../scripts/fig_posterior.py"


rule metrics:
    """One row per test simulation, seed and method (P(k) residuals, r(k), seams, PDF
    distance, mean T_b), and their mean and std over seeds; one row per test simulation
    for each deterministic baseline (seams NaN: no boxes)."""
    input:
        grids=grid_files(TEST_SIMS),
        volumes=lambda w: generated_volumes(sims=TEST_SIMS) + [v for sim in TEST_SIMS for v in BASELINE_VOLUMES[sim]],
    output:
        metrics=report(f"{RESULTS}/metrics.csv", caption="../report/metrics.rst", category="Metrics"),
        summary=report(f"{RESULTS}/metrics_summary.csv", caption="../report/metrics_summary.rst", category="Metrics"),
    log:
        log_file("metrics"),
    benchmark:
        rule_benchmark("metrics")
    conda:
        "../../envs/lodi.yaml"
    resources:
        **cluster_resources(gpu=False),
    params:
        simulations=TEST_SIMS,
    script:
        "../scripts/metrics.py"
