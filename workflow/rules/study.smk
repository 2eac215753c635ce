# The convergence study: HALOgen and LODI trained in chained snapshots at geometric steps,
# every snapshot scored on the held-out simulations, one learning-curve table and figure.
#   snakemake --cores all study --configfile config/study.yaml
# Variants (ablations) override lodi.* and generation.* keys; one with `train_as: other` reuses
# that variant's training (e.g. another sampler on the same weights). Adding a larger step
# continues the chain from the last snapshot instead of training again.
wildcard_constraints:
    step=r"\d+",
    epoch=r"\d+",
    seed=r"\d+",
    condition="true_halos|halogen",


rule study:
    """The learning curve of the convergence study (table and figure)."""
    input:
        f"{STUDY_DIR}/learning_curve.csv",
        figure_file("study/learning_curve"),


rule study_lodi_snapshot:
    """LODI trained from the previous snapshot of its chain to this step (CPU or GPU job)."""
    input:
        unpack(prev_lodi_state),
        grids=grid_files(config["simulations"]["lodi_train"]),
    output:
        model=f"{STUDY_DIR}/lodi/{{variant}}/step{{step}}/model.pt",
        state=f"{STUDY_DIR}/lodi/{{variant}}/step{{step}}/state.pt",
        history=f"{STUDY_DIR}/lodi/{{variant}}/step{{step}}/history.csv",
    log:
        log_file("study/lodi_{variant}_step{step}"),
    benchmark:
        rule_benchmark("study_lodi_{variant}_step{step}")
    retries: 2
    conda:
        "../../envs/lodi.yaml"
    threads: 4
    resources:
        **cluster_resources(gpu=True),
    params:
        lodi=lambda w: study_lodi_config(w.variant),
        work=lambda w: f"{STUDY_DIR}/lodi/{w.variant}/step{w.step}/work.pt",
        expect=grid_expectation(),
        device=config["device"],
    script:
        "../scripts/study_lodi_snapshot.py"


rule study_halogen_snapshot:
    """HALOgen trained from the previous snapshot to this epoch."""
    input:
        unpack(prev_halogen_state),
        grids=grid_files(config["simulations"]["halogen_train"]),
    output:
        model=f"{STUDY_DIR}/halogen/epoch{{epoch}}/model.pt",
        state=f"{STUDY_DIR}/halogen/epoch{{epoch}}/state.pt",
        history=f"{STUDY_DIR}/halogen/epoch{{epoch}}/history.csv",
    log:
        log_file("study/halogen_epoch{epoch}"),
    benchmark:
        rule_benchmark("study_halogen_epoch{epoch}")
    retries: 2
    conda:
        "../../envs/lodi.yaml"
    threads: 4
    resources:
        **cluster_resources(gpu=True),
    params:
        halogen=lambda w: study_halogen_config(),
        work=lambda w: f"{STUDY_DIR}/halogen/epoch{w.epoch}/work.pt",
        expect=grid_expectation(),
        device=config["device"],
    script:
        "../scripts/study_halogen_snapshot.py"


rule study_predict_halos:
    """A HALOgen snapshot's halo channels of a held-out simulation (with its mass calibration,
    fitted here on the training simulations, unless halogen.mass_calibration is 'none')."""
    input:
        model=halogen_snapshot("{epoch}"),
        grid=grid_file(),
        calibration_grids=lambda w: (
            grid_files(config["simulations"]["halogen_train"]) if halogen_calibration(study_halogen_config()) else []
        ),
    output:
        f"{STUDY_DIR}/halogen/epoch{{epoch}}/{{sim}}_halos.h5",
    log:
        log_file("study/predict_halos_epoch{epoch}_{sim}"),
    retries: 2
    conda:
        "../../envs/lodi.yaml"
    threads: 4
    resources:
        **cluster_resources(gpu=True),
    params:
        inference=lambda w: study_halogen_config()["inference"],
        method=lambda w: halogen_calibration(study_halogen_config()) or "none",
        device=config["device"],
    script:
        "../scripts/study_predict_halos.py"


rule study_halogen_score:
    """HALOgen's channel metrics of one snapshot on one held-out simulation."""
    input:
        model=halogen_snapshot("{epoch}"),
        predicted=f"{STUDY_DIR}/halogen/epoch{{epoch}}/{{sim}}_halos.h5",
        grid=grid_file(),
    output:
        f"{STUDY_DIR}/scores/halogen/epoch{{epoch}}_{{sim}}.csv",
    log:
        log_file("study/halogen_score_epoch{epoch}_{sim}"),
    conda:
        "../../envs/lodi.yaml"
    resources:
        **cluster_resources(gpu=False),
    params:
        post_threshold=lambda w: study_halogen_config()["inference"]["post_threshold"],
    script:
        "../scripts/study_halogen_score.py"


rule study_calibrate_lodi:
    """A LODI snapshot with the variant's T_b calibration (lodi.tb_calibration, as rule
    calibrate_lodi: fitted on simulations.lodi_calibration, on the halos of the score's
    condition, with the variant's sampler)."""
    input:
        model=lambda w: lodi_snapshot(w.variant, w.step),
        grids=lambda w: grid_files(lodi_calibration_names()),
        halos=lambda w: [study_halos_file(sim, w.condition) for sim in lodi_calibration_names()],
    output:
        study_calibrated_model("{variant}", "{step}", "{condition}"),
    log:
        log_file("study/calibrate_lodi_{variant}_step{step}_{condition}"),
    benchmark:
        rule_benchmark("study_calibrate_lodi_{variant}_step{step}_{condition}")
    retries: 2
    conda:
        "../../envs/lodi.yaml"
    threads: 4
    resources:
        **cluster_resources(gpu=True),
    params:
        generation=lambda w: study_generation(w.variant),
        samples=lambda w: study_tb_calibration(w.variant)["samples"],
        level=lambda w: study_tb_calibration(w.variant)["level"],
        device=config["device"],
    script:
        "../scripts/calibrate_lodi.py"


rule study_lodi_score:
    """One held-out volume by latent overlap with a LODI snapshot, scored against the target
    (as painted, and calibrated when the variant calibrates T_b)."""
    input:
        model=study_scored_model,
        halos=study_halos,
        grid=grid_file(),
    output:
        row=f"{STUDY_DIR}/scores/lodi/{{variant}}/step{{step}}_{{sim}}_{{condition}}_seed{{seed}}.csv",
        spectra=f"{STUDY_DIR}/scores/lodi/{{variant}}/step{{step}}_{{sim}}_{{condition}}_seed{{seed}}_pk.csv",
    log:
        log_file("study/lodi_score_{variant}_step{step}_{sim}_{condition}_seed{seed}"),
    benchmark:
        rule_benchmark("study_lodi_score_{variant}_step{step}_{sim}_{condition}_seed{seed}")
    retries: 2
    conda:
        "../../envs/lodi.yaml"
    threads: 4
    resources:
        **cluster_resources(gpu=True),
    params:
        generation=lambda w: study_generation(w.variant),
        device=config["device"],
    script:
        "../scripts/study_lodi_score.py"


rule study_curve:
    """results/study/learning_curve.csv, its summary (means over seeds) and its figure: every
    metric against training time, the baselines as reference lines."""
    input:
        scores=lambda w: study_scores(),
        spectra=lambda w: study_lodi_scores("_pk.csv"),
        baselines=lambda w: study_baselines(),
        grids=lambda w: grid_files(study_section().get("simulations", TEST_SIMS)),
    output:
        table=report(f"{STUDY_DIR}/learning_curve.csv", caption="../report/study.rst", category="Study"),
        summary=f"{STUDY_DIR}/learning_curve_summary.csv",
        pdf=report(figure_file("study/learning_curve"), caption="../report/study.rst", category="Study"),
        png=figure_file("study/learning_curve", "png"),
    log:
        log_file("study/curve"),
    conda:
        "../../envs/lodi.yaml"
    resources:
        **cluster_resources(gpu=False),
    params:
        main=lambda w: study_section()["main"],
        title=f"{config['run_name']}: convergence study",
    script:
        "../scripts/study_curve.py"
