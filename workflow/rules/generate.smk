# Latent-overlap generation: stage by stage, each stage split into parallel shard jobs.


wildcard_constraints:
    seed=r"\d+",
    stage="[1-8]",
    shard=r"\d+",
    method="tiling|averaging",


# Merging a stage is seconds of I/O on the critical path between stages: on a cluster it runs
# where Snakemake runs instead of queueing once per stage (8 queue waits per realisation).
localrules:
    merge_stage,
    assemble_latent_overlap,


rule generate_stage:
    """Sample one shard of one stage's boxes with latent overlap (Algorithm 1), conditioned
    on the state after the previous stage (a GPU job)."""
    input:
        unpack(stage_inputs),
    output:
        temp(shard_file()),
    log:
        log_file("generate/{sim}_seed{seed}_stage{stage}_shard{shard}"),
    benchmark:
        rule_benchmark("generate_{sim}_seed{seed}_stage{stage}_shard{shard}")
    retries: 2
    conda:
        "../../envs/lodi.yaml"
    threads: 4
    resources:
        **cluster_resources(gpu=True),
    params:
        generation=generation_params(),
        device=config["device"],
    script:
        "../scripts/generate_stage.py"


rule merge_stage:
    """Write the partial volume (normalised x_0 and the known mask) after one stage. It runs
    inside the Snakemake process (a local rule, no GPU; the workflow profile's
    force-use-threads keeps Snakemake from spawning a new Snakemake for it): a few
    milliseconds of copying that would otherwise pay a new Python's start, 8 times per volume."""
    input:
        unpack(merge_inputs),
    output:
        temp(state_file()),
    log:
        log_file("generate/{sim}_seed{seed}_merge{stage}"),
    resources:
        **cluster_resources(gpu=False),
    params:
        n_grid=generation_n_grid,
        box=config["lodi"]["train"]["box"],
    run:
        merge_stage_in_process(input, output, params, wildcards, log)


rule assemble_latent_overlap:
    """The T_b volume (mK) after the 8 stages, with provenance."""
    input:
        model=lodi_for_tb(),
        halos=halo_source,
        state=state_file(stage=8),
    output:
        volume_file(method="latent_overlap"),
    log:
        log_file("generate/{sim}_seed{seed}_assemble"),
    conda:
        "../../envs/lodi.yaml"
    resources:
        **cluster_resources(gpu=False),
    params:
        generation=generation_params(),
        device=config["device"],
    script:
        "../scripts/assemble_volume.py"


rule generate_baseline:
    """Tiling (independent non-overlapping boxes) or averaging (independent overlapping
    boxes, overlaps averaged), for the comparison figures (a GPU job)."""
    input:
        model=lodi_for_tb(),
        halos=halo_source,
    output:
        volume_file(),
    log:
        log_file("generate/{sim}_{method}_seed{seed}"),
    benchmark:
        rule_benchmark("generate_{sim}_{method}_seed{seed}")
    retries: 2
    conda:
        "../../envs/lodi.yaml"
    threads: 4
    resources:
        **cluster_resources(gpu=True),
    params:
        generation=generation_params(),
        device=config["device"],
    script:
        "../scripts/generate_baseline.py"


rule overlap_pair:
    """Fig. 6's data: one overlapping pair of boxes sampled on the first test simulation's halo
    condition, box B with latent overlap and independently; its latents at a few reverse
    steps and the final T_b (a GPU job)."""
    input:
        model=lodi_for_tb(),
        halos=halo_source_file(FIRST_SIM),
    output:
        f"{RESULTS}/generated/{FIRST_SIM}/overlap_pair_seed{FIRST_SEED}.h5",
    log:
        log_file("generate/overlap_pair"),
    benchmark:
        rule_benchmark("overlap_pair")
    retries: 2
    conda:
        "../../envs/lodi.yaml"
    threads: 4
    resources:
        **cluster_resources(gpu=True),
    params:
        generation=generation_params(),
        seed=FIRST_SEED,
        device=config["device"],
    script:
        "../scripts/overlap_pair.py"
