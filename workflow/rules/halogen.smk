# HALOgen: training (GPU job), full-box inference, evaluation on held-out simulations.


rule train_halogen:
    """Train HALOgen on the 64^3 windows of the training simulations (Sec. 2.3.1); resumes
    from results/halogen/checkpoint.pt (written every epoch and on SIGTERM/SIGUSR1)."""
    input:
        grids=expand(f"{RESULTS}/grids/{{sim}}.h5", sim=config["simulations"]["halogen_train"]),
    output:
        model=f"{RESULTS}/halogen/model.pt",
        history=f"{RESULTS}/halogen/history.csv",
    params:
        halogen=config["halogen"],
        expect=grid_expectation(),
        checkpoint=f"{RESULTS}/halogen/checkpoint.pt",
        device=config["device"],
    log:
        f"{RESULTS}/logs/train_halogen.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/train_halogen.tsv"
    threads: 4
    retries: 2
    resources:
        **cluster_resources(gpu=True),
    conda:
        "../../envs/lodi.yaml"
    script:
        "../scripts/train_halogen.py"


rule predict_halos:
    """HALOgen on a whole box by sliding windows, overlaps averaged, post-threshold."""
    input:
        model=f"{RESULTS}/halogen/model.pt",
        grids=f"{RESULTS}/grids/{{sim}}.h5",
    output:
        f"{RESULTS}/halogen/predicted/{{sim}}.h5",
    params:
        inference=config["halogen"]["inference"],
        device=config["device"],
    log:
        f"{RESULTS}/logs/predict_halos/{{sim}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/predict_halos_{{sim}}.tsv"
    threads: 4
    retries: 2
    resources:
        **cluster_resources(gpu=True),
    conda:
        "../../envs/lodi.yaml"
    script:
        "../scripts/predict_halos.py"


rule evaluate_halogen:
    """Per channel: PDF of log rho_h (median, 16-84 %), P(k) and r(k), mass recovered."""
    input:
        predicted=f"{RESULTS}/halogen/predicted/{{sim}}.h5",
        grids=f"{RESULTS}/grids/{{sim}}.h5",
    output:
        summary=f"{RESULTS}/halogen/eval/{{sim}}_summary.csv",
        pdf=f"{RESULTS}/halogen/eval/{{sim}}_pdf.csv",
        pk=f"{RESULTS}/halogen/eval/{{sim}}_pk.csv",
    params:
        post_threshold=config["halogen"]["inference"]["post_threshold"],
    log:
        f"{RESULTS}/logs/evaluate_halogen/{{sim}}.log",
    resources:
        **cluster_resources(gpu=False),
    conda:
        "../../envs/lodi.yaml"
    script:
        "../scripts/evaluate_halogen.py"


rule plot_training:
    """Loss curves (training and validation) of a trained model."""
    input:
        f"{RESULTS}/{{model}}/history.csv",
    output:
        pdf=report(f"{RESULTS}/figures/{{model}}_loss.pdf", caption="../report/loss.rst", category="Training"),
        png=f"{RESULTS}/figures/{{model}}_loss.png",
    wildcard_constraints:
        model="halogen|lodi",
    log:
        f"{RESULTS}/logs/figures/{{model}}_loss.log",
    resources:
        **cluster_resources(gpu=False),
    conda:
        "../../envs/lodi.yaml"
    script:
        "../scripts/plot_training.py"
