# LODI: the conditional VDM, trained on true halo channels (GPU job).


rule train_lodi:
    """Train the conditional VDM on halo-biased 32^3 sub-volumes of the training simulations
    (Sec. 2.3.2); resumes from results/lodi/checkpoint.pt."""
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
        **cluster_resources(gpu=True),
    params:
        lodi=config["lodi"],
        expect=grid_expectation(),
        checkpoint=f"{RESULTS}/lodi/checkpoint.pt",
        device=config["device"],
    script:
        "../scripts/train_lodi.py"
