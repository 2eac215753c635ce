# Latent-overlap generation: stage by stage, each stage split into parallel shard jobs.
GEN = f"{RESULTS}/generated"


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
        temp(f"{GEN}/{{sim}}/seed{{seed}}/stage{{stage}}_shard{{shard}}.h5"),
    params:
        generation=config["generation"],
        device=config["device"],
    log:
        f"{RESULTS}/logs/generate/{{sim}}_seed{{seed}}_stage{{stage}}_shard{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/generate_{{sim}}_seed{{seed}}_stage{{stage}}_shard{{shard}}.tsv"
    threads: 4
    retries: 2
    resources:
        **cluster_resources(gpu=True),
    conda:
        "../../envs/lodi.yaml"
    script:
        "../scripts/generate_stage.py"


rule merge_stage:
    """Write the partial volume (normalised x_0 and the known mask) after one stage."""
    input:
        unpack(merge_inputs),
    output:
        temp(f"{GEN}/{{sim}}/seed{{seed}}/state_stage{{stage}}.h5"),
    params:
        n_grid=generation_n_grid,
        box=config["lodi"]["train"]["box"],
    log:
        f"{RESULTS}/logs/generate/{{sim}}_seed{{seed}}_merge{{stage}}.log",
    resources:
        **cluster_resources(gpu=False),
    conda:
        "../../envs/lodi.yaml"
    script:
        "../scripts/merge_stage.py"


rule assemble_latent_overlap:
    """The T_b volume (mK) after the 8 stages, with provenance."""
    input:
        model=f"{RESULTS}/lodi/model.pt",
        halos=halo_source,
        state=f"{GEN}/{{sim}}/seed{{seed}}/state_stage8.h5",
    output:
        f"{GEN}/{{sim}}/latent_overlap_seed{{seed}}.h5",
    params:
        generation=config["generation"],
        device=config["device"],
    log:
        f"{RESULTS}/logs/generate/{{sim}}_seed{{seed}}_assemble.log",
    resources:
        **cluster_resources(gpu=False),
    conda:
        "../../envs/lodi.yaml"
    script:
        "../scripts/assemble_volume.py"


rule generate_baseline:
    """Tiling (independent non-overlapping boxes) or averaging (independent overlapping
    boxes, overlaps averaged), for the comparison figures (a GPU job)."""
    input:
        model=f"{RESULTS}/lodi/model.pt",
        halos=halo_source,
    output:
        f"{GEN}/{{sim}}/{{method}}_seed{{seed}}.h5",
    params:
        generation=config["generation"],
        device=config["device"],
    log:
        f"{RESULTS}/logs/generate/{{sim}}_{{method}}_seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/rules/generate_{{sim}}_{{method}}_seed{{seed}}.tsv"
    threads: 4
    retries: 2
    resources:
        **cluster_resources(gpu=True),
    conda:
        "../../envs/lodi.yaml"
    script:
        "../scripts/generate_baseline.py"
