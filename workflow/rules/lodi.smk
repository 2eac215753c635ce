# LODI: the conditional VDM, trained on true halo channels (GPU job).


rule train_lodi:
    """Train the conditional VDM on halo-biased 32^3 sub-volumes of the training simulations
    (Sec. 2.3.2); resumes from results/lodi/checkpoint.pt. With lodi.train.gpus x nodes > 1,
    one process per GPU (srun in SLURM, torchrun on one machine), data-parallel."""
    input:
        grids=grid_files(config["simulations"]["lodi_train"]),
        halos=lodi_training_halos(),
    output:
        model=LODI_MODEL,
        history=f"{RESULTS}/lodi/history.csv",
    log:
        log_file("train_lodi"),
    benchmark:
        rule_benchmark("train_lodi")
    retries: 2
    conda:
        "../../envs/lodi.yaml"
    threads: 4
    resources:
        **training_resources("lodi"),
    params:
        settings=training_settings("lodi", ("network", "vdm")),
        checkpoint=f"{RESULTS}/lodi/checkpoint.pt",
        device=config["device"],
    shell:
        "python -m lodi_core launch --processes {resources.processes} --nodes {resources.nodes} --threads {threads} -- "
        "train lodi --settings {params.settings:q} --grids {input.grids:q} --halos {input.halos:q} "
        "--checkpoint {params.checkpoint:q} --model {output.model:q} --history {output.history:q} "
        "--device {params.device} --threads {threads} --timeout {resources.collective_timeout_s} --log-file {log:q}"


rule calibrate_lodi:
    """The trained LODI with its T_b calibration (beyond the paper; lodi.tb_calibration):
    a quantile map from the T_b of its latent-overlap volumes of the calibration simulations
    (on the halo channels generation conditions on) to their true T_b, scaled to keep LODI's
    total (or the calibration simulations': lodi.tb_calibration_level), applied to every
    generated volume. Stage jobs do not wait for it."""
    input:
        model=LODI_MODEL,
        grids=grid_files(lodi_calibration_simulations()),
        halos=[halo_source_file(sim) for sim in lodi_calibration_simulations()],
    output:
        LODI_CALIBRATED,
    log:
        log_file("calibrate_lodi"),
    benchmark:
        rule_benchmark("calibrate_lodi")
    retries: 2
    conda:
        "../../envs/lodi.yaml"
    threads: 4
    resources:
        **cluster_resources(gpu=True),
    params:
        generation=generation_params(),
        samples=tb_calibration_settings(config["lodi"])["samples"],
        level=tb_calibration_settings(config["lodi"])["level"],
        device=config["device"],
    script:
        "../scripts/calibrate_lodi.py"
