# Baselines beside LODI (lodi_core.models.halo_model, lodi_core.models.ldl): the halo model painted on HALOgen's halos and on
# the true halos, and Lagrangian Deep Learning (LDL) on the DM-only particles. Both are fitted
# on simulations.lodi_train and written for the test simulations as generated volumes, so the
# metrics table and the r(k), P(k) and PDF figures treat them as more methods. They are
# deterministic: one volume per test simulation, named after the first seed, i.e. one row in
# metrics.csv (copies for every seed would repeat the same row and fake a zero spread).
# No baseline rule reads the seeds except through that file name, so a seed change never
# refits them. On synthetic data, hi_redraw is the test simulation's own T_b with its per-halo
# HI scatter drawn again (draws 1..baselines.hi_redraw.draws): exact samples given the halos,
# the floor of every metric.
#   snakemake --cores all baselines          every baseline volume and figure
BASELINE_DIR = f"{RESULTS}/baselines"
BASELINE_METHODS = list(config["baselines"]["methods"])
BASELINE_TRAIN = list(config["simulations"]["lodi_train"])
BASELINE_TEST = list(config["simulations"]["test"])
BASELINE_SEED = config["seeds"][0]
HI_REDRAWS = list(range(1, int(config["baselines"]["hi_redraw"]["draws"]) + 1))
if "hi_redraw" in BASELINE_METHODS and config["data"]["source"] != "synthetic":
    raise ValueError(
        "config baselines.methods has 'hi_redraw', which remakes the synthetic test simulations; "
        f"data.source is {config['data']['source']!r}: remove it from baselines.methods"
    )
# the particles LDL moves: those HALOgen's rho_DM comes from (the DM-only run by default)
LDL_SNAPSHOT = "dm_only" if config["data"]["dm_source"] == "dm_only" else "hydro"
# the seeds of each baseline's volumes: the first seed if deterministic, every draw of hi_redraw
BASELINE_SEEDS = {m: HI_REDRAWS if m == "hi_redraw" else [BASELINE_SEED] for m in BASELINE_METHODS}
# test simulation -> its baseline volumes (read by the metrics and figure rules)
BASELINE_VOLUMES = {
    sim: [volume_file(sim, m, s) for m in BASELINE_METHODS for s in BASELINE_SEEDS[m]] for sim in BASELINE_TEST
}
# what `all` builds from this file (the Snakefile's all_targets() adds it)
BASELINE_TARGETS = (
    [v for sim in BASELINE_TEST for v in BASELINE_VOLUMES[sim]]
    + (expand(figure_file("baselines_{sim}"), sim=BASELINE_TEST) if BASELINE_METHODS else [])
    + ([figure_file("ldl_loss")] if "ldl" in BASELINE_METHODS else [])
)


rule baselines:
    """Every baseline volume and figure."""
    input:
        BASELINE_TARGETS,


rule fit_halo_model:
    """Halo model: the HI-to-halo-mass ratio of each channel (non-negative least squares of
    T_b on the smoothed halo channels of the training simulations), as JSON with units."""
    input:
        grids=grid_files(BASELINE_TRAIN),
    output:
        f"{BASELINE_DIR}/halo_model.json",
    log:
        log_file("baselines/fit_halo_model"),
    conda:
        "../../envs/lodi.yaml"
    resources:
        **cluster_resources(gpu=False),
    params:
        expect=grid_expectation(),
    script:
        "../scripts/baseline_fit_halo_model.py"


rule halo_model_volume:
    """T_b painted by the halo model on HALOgen's halos (halo_model) or on the simulation's own
    halos (halo_model_true), written as a generated volume."""
    input:
        model=f"{BASELINE_DIR}/halo_model.json",
        halos=lambda w: predicted_halos_file(w.sim) if w.baseline == "halo_model" else grid_file(w.sim),
    output:
        volume_file(method="{baseline}"),
    log:
        log_file("baselines/{sim}_{baseline}_seed{seed}"),
    wildcard_constraints:
        sim=name_regex(BASELINE_TEST),
        baseline="halo_model|halo_model_true",
        seed=r"\d+",
    conda:
        "../../envs/lodi.yaml"
    resources:
        **cluster_resources(gpu=False),
    script:
        "../scripts/baseline_halo_model.py"


rule train_ldl:
    """Lagrangian Deep Learning: fit the displacement and activation layers on the training
    simulations' particles against their T_b grids (CPU); resumes from its checkpoint."""
    input:
        snapshots=[simulation_files(sim)[LDL_SNAPSHOT] for sim in BASELINE_TRAIN],
        grids=grid_files(BASELINE_TRAIN),
    output:
        model=f"{BASELINE_DIR}/ldl/model.pt",
        history=f"{BASELINE_DIR}/ldl/history.csv",
    log:
        log_file("baselines/train_ldl"),
    benchmark:
        rule_benchmark("train_ldl")
    conda:
        "../../envs/lodi.yaml"
    threads: 4
    resources:
        **cluster_resources(gpu=False),
    params:
        ldl=config["baselines"]["ldl"],
        checkpoint=f"{BASELINE_DIR}/ldl/checkpoint.pt",
        expect=grid_expectation(),
    script:
        "../scripts/baseline_train_ldl.py"


rule ldl_volume:
    """T_b painted by the trained LDL model on a test simulation's particles."""
    input:
        model=f"{BASELINE_DIR}/ldl/model.pt",
        snapshot=lambda w: simulation_files(w.sim)[LDL_SNAPSHOT],
        grid=grid_file(),
    output:
        volume_file(method="ldl"),
    log:
        log_file("baselines/{sim}_ldl_seed{seed}"),
    wildcard_constraints:
        sim=name_regex(BASELINE_TEST),
        seed=r"\d+",
    conda:
        "../../envs/lodi.yaml"
    threads: 4
    resources:
        **cluster_resources(gpu=False),
    script:
        "../scripts/baseline_ldl.py"


rule hi_redraw_volume:
    """A synthetic test simulation made again from its seed with another draw of its per-halo
    HI scatter, gridded, its T_b written as a volume (an exact sample given the halos)."""
    input:
        grid=grid_file(),
    output:
        volume_file(method="hi_redraw"),
    log:
        log_file("baselines/{sim}_hi_redraw_seed{seed}"),
    benchmark:
        rule_benchmark("hi_redraw_{sim}_seed{seed}")
    wildcard_constraints:
        sim=name_regex(BASELINE_TEST),
        seed=r"[1-9]\d*",
    conda:
        "../../envs/lodi.yaml"
    threads: 1  # as synthetic_simulation
    resources:
        **cluster_resources(gpu=False),
    params:
        ic_seed=lambda w: synthetic_seed(w.sim),
        synthetic=synthetic_params(),
        data=grid_params(),
        cosmology=config["cosmology"],
        device=config["device"],
    script:
        "../scripts/baseline_hi_redraw.py"


rule plot_ldl_training:
    """Loss curve of the LDL fit (total and its real- and Fourier-space terms in the CSV)."""
    input:
        f"{BASELINE_DIR}/ldl/history.csv",
    output:
        pdf=report(figure_file("ldl_loss"), caption="../report/baseline_ldl_loss.rst", category="Training"),
        png=figure_file("ldl_loss", "png"),
    log:
        log_file("figures/ldl_loss"),
    conda:
        "../../envs/lodi.yaml"
    resources:
        **cluster_resources(gpu=False),
    script:
        "../scripts/baseline_plot_training.py"


rule baselines_figure:
    """Maps and P(k) of the target, latent overlap (first seed) and each baseline."""
    input:
        grid=grid_file(),
        volumes=lambda w: generated_volumes(methods=["latent_overlap"], sims=[w.sim], seeds=[BASELINE_SEED])
        + BASELINE_VOLUMES[w.sim],
    output:
        pdf=report(
            figure_file("baselines_{sim}"),
            caption="../report/baseline_figure.rst",
            category="Validation",
            subcategory="{sim}",
        ),
        png=figure_file("baselines_{sim}", "png"),
    log:
        log_file("figures/baselines_{sim}"),
    wildcard_constraints:
        sim=name_regex(BASELINE_TEST),
    conda:
        "../../envs/lodi.yaml"
    resources:
        **cluster_resources(gpu=False),
    params:
        title=lambda w: f"{w.sim} ({config['run_name']})",
    script:
        "../scripts/baseline_figure.py"
