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
