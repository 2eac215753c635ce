# Data layer: simulations (synthetic or downloaded CAMELS) -> grids -> first figure.
SIM_WILDCARD = r"[A-Za-z0-9_.\-]+"


wildcard_constraints:
    sim=SIM_WILDCARD,


rule synthetic_simulation:
    """A small simulation in the exact CAMELS layout: 2LPT ICs, particle-mesh N-body to z = 0,
    FoF halos, gas with HI from the Villaescusa-Navarro et al. (2018) HI-halo relation."""
    output:
        hydro=f"{SYNTHETIC_ROOT}/Sims/{{suite}}/{{volume}}/{{set}}/{{sim}}/snapshot_{{snap}}.hdf5",
        groups=f"{SYNTHETIC_ROOT}/FOF_Subfind/{{suite}}/{{volume}}/{{set}}/{{sim}}/groups_{{snap}}.hdf5",
        dm_only=f"{SYNTHETIC_ROOT}/Sims/{{suite}}_DM/{{volume}}/{{set}}/{{sim}}/snapshot_{{snap}}.hdf5",
    log:
        log_file("synthetic/{suite}_{volume}_{set}_{sim}_{snap}"),
    benchmark:
        rule_benchmark("synthetic_{suite}_{volume}_{set}_{sim}_{snap}")
    wildcard_constraints:
        suite="[A-Za-z]+",
        snap=r"\d{3}",
    conda:
        "../../envs/lodi.yaml"
    threads: 1  # mostly single-threaded (profiles/default sizes every rule's threads)
    resources:
        **cluster_resources(gpu=False),
    params:
        seed=lambda w: synthetic_seed(w.sim),
        synthetic=synthetic_params(),
        box_size=config["data"]["box_size"],
        redshift=config["data"]["redshift"],
        cosmology=config["cosmology"],
        device=config["device"],
    script:
        "../scripts/synthetic_simulation.py"


rule download_camels:
    """Fetch one CV simulation (hydro snapshot, SUBFIND catalogue, DM-only snapshot) from the
    CAMELS file server; resumable, size-checked. Used when data.source is 'camels'."""
    output:
        hydro=f"{config['data']['camels']['root']}/Sims/{{suite}}/{{volume}}/{{set}}/{{sim}}/snapshot_{{snap}}.hdf5",
        groups=f"{config['data']['camels']['root']}/FOF_Subfind/{{suite}}/{{volume}}/{{set}}/{{sim}}/groups_{{snap}}.hdf5",
        dm_only=f"{config['data']['camels']['root']}/Sims/{{suite}}_DM/{{volume}}/{{set}}/{{sim}}/snapshot_{{snap}}.hdf5",
    log:
        log_file("download/{suite}_{volume}_{set}_{sim}_{snap}"),
    wildcard_constraints:
        suite="[A-Za-z]+",
        snap=r"\d{3}",
    retries: 2
    conda:
        "../../envs/lodi.yaml"
    resources:
        **cluster_resources(gpu=False),
    params:
        files=lambda w, output: camels_downloads(output),
    script:
        "../scripts/download_camels.py"


rule grids:
    """CIC grids of one simulation: rho_DM, the 4 halo channels (Eq. 1) and T_b (Eq. 12),
    Gaussian-smoothed; HDF5 with units and provenance."""
    input:
        unpack(lambda w: simulation_files(w.sim)),
    output:
        grid_file(),
    log:
        log_file("grids/{sim}"),
    benchmark:
        rule_benchmark("grids_{sim}")
    wildcard_constraints:
        sim=name_regex(simulations()),
    conda:
        "../../envs/lodi.yaml"
    threads: 4
    resources:
        **cluster_resources(gpu=False),
    params:
        data=grid_params(),
        cosmology=config["cosmology"],
        device=config["device"],
    script:
        "../scripts/grids.py"


rule dm_grid:
    """Bring your own dark matter: the rho_DM grid of a DM-only snapshot named in
    generation.dm_snapshots (any box size, the training cell size)."""
    input:
        lambda w: external_simulations()[w.sim],
    output:
        grid_file(),
    log:
        log_file("grids/{sim}"),
    wildcard_constraints:
        sim=name_regex(list(external_simulations())),
    conda:
        "../../envs/lodi.yaml"
    threads: 4
    resources:
        **cluster_resources(gpu=False),
    params:
        data=grid_params(),
        cosmology=config["cosmology"],
        n_grid=lambda w: external_n_grid(w.sim),
        device=config["device"],
    script:
        "../scripts/dm_grid.py"


rule plot_grids:
    """Slices of dm, the halo channels and T_b with their power spectra."""
    input:
        grid_file(),
    output:
        pdf=report(
            figure_file("grids_{sim}"),
            caption="../report/grids.rst",
            category="Data",
            subcategory="{sim}",
        ),
        png=figure_file("grids_{sim}", "png"),
    log:
        log_file("figures/grids_{sim}"),
    conda:
        "../../envs/lodi.yaml"
    resources:
        **cluster_resources(gpu=False),
    script:
        "../scripts/plot_grids.py"
