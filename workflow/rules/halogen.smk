# HALOgen: training (GPU job), full-box inference, evaluation on held-out simulations.


rule train_halogen:
    """Train HALOgen on the 64^3 windows of the training simulations (Sec. 2.3.1); resumes
    from results/halogen/checkpoint.pt (written every epoch and on SIGTERM/SIGUSR1). With
    halogen.train.gpus x nodes > 1, one process per GPU, data-parallel."""
    input:
        grids=grid_files(config["simulations"]["halogen_train"]),
    output:
        model=HALOGEN_MODEL,
        history=f"{RESULTS}/halogen/history.csv",
    log:
        log_file("train_halogen"),
    benchmark:
        rule_benchmark("train_halogen")
    retries: 2
    conda:
        "../../envs/lodi.yaml"
    threads: 4
    resources:
        **training_resources("halogen"),
    params:
        settings=training_settings("halogen", ("network", "loss")),
        checkpoint=f"{RESULTS}/halogen/checkpoint.pt",
        device=config["device"],
    shell:
        "python -m lodi_core launch --processes {resources.processes} --nodes {resources.nodes} --threads {threads} -- "
        "train halogen --settings {params.settings:q} --grids {input.grids:q} "
        "--checkpoint {params.checkpoint:q} --model {output.model:q} --history {output.history:q} "
        "--device {params.device} --threads {threads} --timeout {resources.collective_timeout_s} --log-file {log:q}"


rule calibrate_halogen:
    """The trained HALOgen with its mass calibration (beyond the paper): per channel, a map from
    rho_pred to the true rho_h fitted on the training simulations (halogen.mass_calibration:
    the mean at that prediction, or the value of the same rank), so that the predicted channels
    keep the halo mass that a regression in log rho_h loses."""
    input:
        model=HALOGEN_MODEL,
        grids=grid_files(config["simulations"]["halogen_train"]),
    output:
        HALOGEN_CALIBRATED,
    log:
        log_file("calibrate_halogen"),
    benchmark:
        rule_benchmark("calibrate_halogen")
    retries: 2
    conda:
        "../../envs/lodi.yaml"
    threads: 4
    resources:
        **cluster_resources(gpu=True),
    params:
        inference=config["halogen"]["inference"],
        method=halogen_calibration(),
        device=config["device"],
    script:
        "../scripts/calibrate_halogen.py"


rule predict_halos:
    """HALOgen on a whole box by sliding windows, overlaps averaged, mass calibration,
    post-threshold."""
    input:
        model=halogen_for_inference(),
        grids=grid_file(),
    output:
        predicted_halos_file(),
    log:
        log_file("predict_halos/{sim}"),
    benchmark:
        rule_benchmark("predict_halos_{sim}")
    retries: 2
    conda:
        "../../envs/lodi.yaml"
    threads: 4
    resources:
        **cluster_resources(gpu=True),
    params:
        inference=config["halogen"]["inference"],
        device=config["device"],
    script:
        "../scripts/predict_halos.py"


rule evaluate_halogen:
    """Per channel: PDF of log rho_h (median, 16-84 %), P(k) and r(k), mass recovered."""
    input:
        predicted=predicted_halos_file(),
        grids=grid_file(),
    output:
        summary=halogen_eval_file("summary"),
        pdf=halogen_eval_file("pdf"),
        pk=halogen_eval_file("pk"),
    log:
        log_file("evaluate_halogen/{sim}"),
    conda:
        "../../envs/lodi.yaml"
    resources:
        **cluster_resources(gpu=False),
    params:
        post_threshold=config["halogen"]["inference"]["post_threshold"],
    script:
        "../scripts/evaluate_halogen.py"


rule plot_training:
    """Loss curves (training and validation) of a trained model."""
    input:
        f"{RESULTS}/{{model}}/history.csv",
    output:
        pdf=report(figure_file("{model}_loss"), caption="../report/loss.rst", category="Training"),
        png=figure_file("{model}_loss", "png"),
    log:
        log_file("figures/{model}_loss"),
    wildcard_constraints:
        model="halogen|lodi",
    conda:
        "../../envs/lodi.yaml"
    resources:
        **cluster_resources(gpu=False),
    script:
        "../scripts/plot_training.py"
