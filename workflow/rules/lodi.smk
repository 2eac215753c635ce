# LODI: the conditional VDM, trained on true halo channels (GPU job).


rule train_lodi:
    """Train the conditional VDM on halo-biased 32^3 sub-volumes of the training simulations
    (Sec. 2.3.2); resumes from results/lodi/checkpoint.pt."""
    input:
        grids=expand(f"{RESULTS}/grids/{{sim}}.h5", sim=config["simulations"]["lodi_train"]),
    output:
        model=f"{RESULTS}/lodi/model.pt",
        history=f"{RESULTS}/lodi/history.csv",
    params:
        lodi=config["lodi"],
        expect=grid_expectation(),
        checkpoint=f"{RESULTS}/lodi/checkpoint.pt",
        device=config["device"],
    log:
        f"{RESULTS}/logs/train_lodi.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/train_lodi.tsv"
    threads: 4
    retries: 2
    resources:
        **cluster_resources(gpu=True),
    conda:
        "../../envs/lodi.yaml"
    script:
        "../scripts/train_lodi.py"
