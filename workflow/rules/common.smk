# Helpers shared by the rules: paths, simulation lists, targets. No rule logic here.
import json
import os
import sys
from pathlib import Path

# lodi_core is importable by this process and by every job's script (also in --sdm conda
# environments and SLURM jobs, which inherit the environment) without an install.
_ROOT = str(Path(workflow.basedir))
sys.path.insert(0, _ROOT)
os.environ.update(PYTHONPATH=os.pathsep.join(p for p in (_ROOT, os.environ.get("PYTHONPATH")) if p))
from lodi_core.data.camels import Layout

RESULTS = config.get("results", "results")


# ----------------------------------------------------------------------------- paths
# Every file the rules share is named here once; arguments default to the wildcard, so
# grid_file() is the pattern "results/grids/{sim}.h5" and grid_file("CV_2") one file.
HALOGEN_MODEL = f"{RESULTS}/halogen/model.pt"
HALOGEN_CALIBRATED = f"{RESULTS}/halogen/model_calibrated.pt"
LODI_MODEL = f"{RESULTS}/lodi/model.pt"
LODI_CALIBRATED = f"{RESULTS}/lodi/model_calibrated.pt"


def grid_file(sim="{sim}"):
    """The grids of one simulation (dm, halos, tb)."""
    return f"{RESULTS}/grids/{sim}.h5"


def grid_files(sims):
    return [grid_file(sim) for sim in sims]


def halogen_calibration(halogen=None):
    """The method of halogen.mass_calibration (of ``halogen``, default the config's section):
    a name or a list of one per channel, None for 'none'."""
    method = (halogen or config["halogen"])["mass_calibration"]
    return None if method == "none" else method


def halogen_for_inference():
    """The HALOgen model file that predicts halos: the trained network, with its mass
    calibration when halogen.mass_calibration is not 'none'."""
    return HALOGEN_CALIBRATED if halogen_calibration() else HALOGEN_MODEL


def predicted_halos_file(sim="{sim}"):
    """HALOgen's halo channels of one simulation."""
    return f"{RESULTS}/halogen/predicted/{sim}.h5"


def merge_stage_in_process(input, output, params, wildcards, log):
    """The merge_stage job inside the Snakemake process (no new Python): the previous state
    plus the stage's shards (lodi_core.generation.jobs.run_merge), and a one-line log."""
    from lodi_core.generation.jobs import run_merge

    attrs = {"simulation": wildcards.sim, "seed": int(wildcards.seed)}
    stage = int(wildcards.stage)
    n = run_merge(input.get("state"), list(input.shards), stage, params.n_grid, params.box, output[0], attrs)
    Path(log[0]).write_text(f"stage {stage}: {n} boxes from {len(input.shards)} shard(s)\n")


def tb_calibration_settings(lodi):
    """The T_b calibration settings of a lodi section (lodi.tb_calibration, _samples, _level;
    beyond the paper), with the schema's defaults: rule calibrate_lodi's and the study's."""
    return {
        "method": lodi.get("tb_calibration", "none"),
        "samples": int(lodi.get("tb_calibration_samples", 2)),
        "level": lodi.get("tb_calibration_level", "lodi"),
    }


def lodi_tb_calibration():
    """Whether LODI's T_b is calibrated (lodi.tb_calibration: quantile; beyond the paper)."""
    return tb_calibration_settings(config["lodi"])["method"] != "none"


def lodi_calibration_names():
    """The simulations whose true T_b calibrates LODI (simulations.lodi_calibration, default
    LODI's training simulations)."""
    sims = config["simulations"]
    return list(sims.get("lodi_calibration") or sims["lodi_train"])


def lodi_calibration_simulations():
    """lodi_calibration_names(), or none when lodi.tb_calibration is 'none'."""
    return lodi_calibration_names() if lodi_tb_calibration() else []


def lodi_for_tb():
    """The LODI model file that turns generated volumes into T_b: the trained network, with its
    T_b calibration when lodi.tb_calibration is not 'none'. Stage jobs use LODI_MODEL (the
    calibration changes no box), so they need not wait for it."""
    return LODI_CALIBRATED if lodi_tb_calibration() else LODI_MODEL


def lodi_training_halos():
    """HALOgen's halos of LODI's training simulations when LODI learns from them
    (lodi.train.condition: halogen); none when it learns from the true halos (the paper)."""
    if config["lodi"]["train"]["condition"] != "halogen":
        return []
    return [predicted_halos_file(sim) for sim in config["simulations"]["lodi_train"]]


def halogen_eval_file(table, sim="{sim}"):
    """HALOgen's evaluation tables (summary, pdf, pk) of one test simulation."""
    return f"{RESULTS}/halogen/eval/{sim}_{table}.csv"


def volume_file(sim="{sim}", method="{method}", seed="{seed}"):
    """A generated T_b volume (LODI's methods and the baselines alike)."""
    return f"{RESULTS}/generated/{sim}/{method}_seed{seed}.h5"


def state_file(sim="{sim}", seed="{seed}", stage="{stage}"):
    """The partial latent-overlap volume after one stage."""
    return f"{RESULTS}/generated/{sim}/seed{seed}/state_stage{stage}.h5"


def shard_file(sim="{sim}", seed="{seed}", stage="{stage}", shard="{shard}"):
    """The boxes of one shard of one stage."""
    return f"{RESULTS}/generated/{sim}/seed{seed}/stage{stage}_shard{shard}.h5"


def figure_file(name, ext="pdf"):
    return f"{RESULTS}/figures/{name}.{ext}"


def log_file(name):
    return f"{RESULTS}/logs/{name}.log"


def rule_benchmark(name):
    """Snakemake's per-rule timing table."""
    return f"{RESULTS}/benchmarks/rules/{name}.tsv"


def check_config():
    """Constraints between keys that the schema cannot express; each error names the keys."""
    from lodi_core.data.boxes import box_origins

    n = config["data"]["n_grid"]
    problems = []
    halo = config["halogen"]
    window = halo["train"]["window"]
    down = 2 ** len(halo["network"]["channels"])
    if window > n:
        problems.append(f"halogen.train.window ({window}) is larger than data.n_grid ({n})")
    if window % down:
        problems.append(
            f"halogen.train.window ({window}) must be a multiple of 2^len(halogen.network.channels) = {down}"
        )
    groups = halo["network"]["out_channels"]
    for key in ("channels", "bottleneck_channels"):
        widths = halo["network"][key] if key == "channels" else [halo["network"][key]]
        if any(w % groups for w in widths):
            problems.append(f"halogen.network.{key} must be multiples of halogen.network.out_channels ({groups})")
    n_channels = len(config["data"]["halo_mass_edges"])
    if groups != n_channels:
        problems.append(
            f"halogen.network.out_channels ({groups}) must equal the number of data.halo_mass_edges ({n_channels})"
        )
    if len(halo["loss"]["beta"]) != groups:
        problems.append(
            f"halogen.loss.beta has {len(halo['loss']['beta'])} entries, one per halo channel ({groups}) expected"
        )
    from lodi_core.data.calibration import calibration_methods

    methods, calibration = [], halogen_calibration()
    if calibration:
        try:
            methods = calibration_methods(calibration, groups)
        except ValueError as err:
            problems.append(f"halogen.mass_calibration: {err}")
    lodi = config["lodi"]
    box = lodi["train"]["box"]
    ldown = 2 ** (len(lodi["network"]["channels"]) - 1)
    if box % ldown:
        problems.append(f"lodi.train.box ({box}) must be a multiple of 2^(len(lodi.network.channels) - 1) = {ldown}")
    if lodi["network"]["cond_channels"] != n_channels:
        problems.append(
            f"lodi.network.cond_channels ({lodi['network']['cond_channels']}) must equal the number of halo channels ({n_channels})"
        )
    for key in ("high_mass_channels", "low_mass_channels"):
        if any(c > n_channels for c in lodi["train"][key]):
            problems.append(f"lodi.train.{key} names a channel above {n_channels}")
    try:
        box_origins(n, box, config["generation"]["overlap"], config["generation"]["periodic"])
    except ValueError as err:
        problems.append(f"generation.overlap / lodi.train.box / data.n_grid: {err}")
    from lodi_core.training.distributed import check_world

    for section in ("halogen", "lodi"):
        t = config[section]["train"]
        problems.append(check_world(t["batch_size"], t["gpus"], t["nodes"], f"{section}.train"))
    problems = [p for p in problems if p]
    if problems:
        raise ValueError("invalid configuration:\n  - " + "\n  - ".join(problems))
    if "mean" in methods and config["lodi"]["train"]["condition"] == "true_halos":
        print(
            "warning: halogen.mass_calibration: mean with lodi.train.condition: true_halos: a LODI trained on "
            "the compact true halos paints ~3x the T_b on the calibrated, spread-out halos (docs/convergence.md); "
            "use condition: halogen, or mass_calibration: none as in config/paper.yaml",
            file=sys.stderr,
        )

    overlap = set(lodi_calibration_simulations()) & set(config["simulations"]["halogen_train"])
    if overlap and config["generation"]["condition_on"] == "halogen":
        print(
            f"warning: lodi.tb_calibration on HALOgen's halos of {sorted(overlap)}, which HALOgen trained on: its "
            "halos there are not those of unseen simulations, and the map fitted on them made the held-out "
            "spectra worse (docs/convergence.md, 'Calibrating T_b'); name others in simulations.lodi_calibration",
            file=sys.stderr,
        )


check_config()
TEST_SIMS = list(config["simulations"]["test"])
# figures that show one realisation use the first seed; Figs. 6 and 7 the first test simulation
FIRST_SIM = TEST_SIMS[0]
FIRST_SEED = config["seeds"][0]
SYNTHETIC_ROOT = f"{RESULTS}/synthetic_camels"


def cluster_resources(gpu=False):
    """SLURM settings of the `slurm:` block (set by profiles/slurm): account, partition and,
    for GPU rules, the GPU partition and model. Empty values are left out; locally this is
    empty and changes nothing."""
    c = config.get("slurm", {})
    res = {}
    if c.get("account"):
        res["slurm_account"] = c["account"]
    partition = (c.get("gpu_partition") or c.get("partition")) if gpu else c.get("partition")
    if partition:
        res["slurm_partition"] = partition
    if gpu:
        res["gpu"] = 1
        if c.get("gpu_model"):
            res["gpu_model"] = c["gpu_model"]
    return res


def training_resources(section):
    """Resources of the train_<section> rule: `<section>.train.gpus` processes (one per GPU) on each of
    `.nodes` nodes. One process is a plain GPU job. Several are one SLURM job with one task per
    GPU (the executor plugin's documented `tasks`/`tasks_per_node`, `nodes`, `gpu`/`gres` and
    `mpi`; `mpi` makes the job step run the rule's command itself, which starts the ranks
    with srun, and `tasks_per_gpu: 0` keeps `--ntasks-per-gpu` out). `processes` and
    `collective_timeout_s` are read by the rule's command; resources, unlike params, do not
    trigger reruns, and the trained weights do not depend on them."""
    t = config[section]["train"]
    gpus, nodes = t["gpus"], t["nodes"]
    res = cluster_resources(gpu=True)
    res.update(processes=gpus * nodes, nodes=nodes, collective_timeout_s=t["collective_timeout_s"])
    if gpus * nodes > 1:
        res.update(mpi="srun", tasks_per_gpu=0)
        if nodes == 1:
            res.update(gpu=gpus, tasks=gpus)
        else:  # GPUs per node: --gres; --gpus would only fix the total
            del res["gpu"]
            model = res.pop("gpu_model", None)
            res["gres"] = f"gpu:{model}:{gpus}" if model else f"gpu:{gpus}"
            res.update({"tasks_per_node": gpus} if gpus > 1 else {"tasks": nodes})
    return res


def training_settings(section, parts):
    """The JSON the train_<section> job hands to `python -m lodi_core train`: the config's
    `parts` of the section, its train settings without the launch keys (how many processes
    train does not change the weights), and the grids' expected layout."""
    from lodi_core.training.distributed import LAUNCH_KEYS

    c = config[section]
    train = {k: v for k, v in c["train"].items() if k not in LAUNCH_KEYS}
    return json.dumps({**{k: c[k] for k in parts}, "train": train, "expect": grid_expectation()})


def data_source():
    return config["data"]["source"]


def camels_layout():
    """Where the snapshots of the active source live (synthetic: written by this workflow)."""
    cam = config["data"]["camels"]
    if data_source() == "synthetic":
        syn = config["synthetic"]
        volume = f"L{config['data']['box_size']:g}n{syn['n_particles']}"
        return Layout(root=SYNTHETIC_ROOT, suite=cam["suite"], volume=volume, set=cam["set"], snapnum=cam["snapnum"])
    return Layout(root=cam["root"], suite=cam["suite"], volume=cam["volume"], set=cam["set"], snapnum=cam["snapnum"])


def simulation_files(sim):
    """The three inputs of one simulation (hydro snapshot, group catalogue, DM-only snapshot).
    For real CAMELS data an existing older layout/naming is used where found."""
    lay = camels_layout()
    pick = lay.path if data_source() == "synthetic" else lay.find
    return {
        "hydro": str(pick("snapshot", sim)),
        "groups": str(pick("groups", sim)),
        "dm_only": str(pick("snapshot", sim, dm_only=True)),
    }


def camels_downloads(output):
    """URL and optional SHA-256 of each file the download writes: the path below
    data.camels.root is the path below the file server's base URL."""
    cam = config["data"]["camels"]
    files = {}
    for key in ("hydro", "groups", "dm_only"):
        rel = Path(output[key]).relative_to(cam["root"]).as_posix()
        files[key] = {"url": f"{cam['base_url'].rstrip('/')}/{rel}", "sha256": cam["checksums"].get(rel)}
    return files


def simulations():
    """Every simulation the config names, in a stable order."""
    sims = config["simulations"]
    names = sims["halogen_train"] + sims["lodi_train"] + lodi_calibration_simulations() + sims["test"]
    study = config.get("study")
    if study:  # the convergence study's held-out simulations and its variants' T_b calibration
        names += list(study.get("simulations", [])) + lodi_calibration_names()
        names += [sim for v in study.get("variants", {}).values() for sim in v.get("simulations", [])]
    return list(dict.fromkeys(names))


def grid_params():
    """The data settings a grid job depends on (its params)."""
    from lodi_core.data.grids import GRID_CONFIG_KEYS

    return {k: config["data"][k] for k in GRID_CONFIG_KEYS}


def synthetic_params():
    """The settings every synthetic simulation shares; each also has its own seed, so adding
    or reseeding one simulation reruns only that one."""
    return {k: v for k, v in config["synthetic"].items() if k != "ic_seeds"}


def synthetic_seed(sim):
    seeds = config["synthetic"]["ic_seeds"]
    if sim not in seeds:
        raise ValueError(f"config synthetic.ic_seeds has no seed for simulation '{sim}' (it has {sorted(seeds)})")
    return seeds[sim]


def name_regex(names):
    """A wildcard constraint matching exactly these names (nothing when empty)."""
    import re

    return "|".join(re.escape(n) for n in names) if names else "(?!x)x"


def external_simulations():
    """Bring-your-own dark matter: name -> DM-only snapshot (generation.dm_snapshots)."""
    return dict(config["generation"]["dm_snapshots"])


def grid_expectation():
    """Attributes every grid file must carry for this config."""
    return {"box_size": float(config["data"]["box_size"]), "n_grid": int(config["data"]["n_grid"])}


def generation_simulations():
    return list(dict.fromkeys(config["simulations"]["test"] + list(external_simulations())))


def halo_source_file(sim):
    """Halo channels LODI is conditioned on: HALOgen's prediction (the paper's pipeline) or,
    for test simulations with generation.condition_on = true_halos, the simulation's own."""
    if config["generation"]["condition_on"] == "true_halos" and sim not in external_simulations():
        return grid_file(sim)
    return predicted_halos_file(sim)


def halo_source(w):
    return halo_source_file(w.sim)


def generation_n_grid(w):
    """Cells per side of a simulation's volume (external snapshots may be larger)."""
    if w.sim in external_simulations():
        return external_n_grid(w.sim)
    return int(config["data"]["n_grid"])


def external_n_grid(sim):
    """Same cell size as the training grids: n = L / (L_train / n_train), read from the header."""
    from lodi_core.data.camels import read_box_size

    cell = float(config["data"]["box_size"]) / int(config["data"]["n_grid"])
    box = read_box_size(external_simulations()[sim])
    n = box / cell
    if abs(n - round(n)) > 1e-6 * n:
        raise ValueError(
            f"generation.dm_snapshots.{sim}: box of {box:g} Mpc/h is not a whole number of training cells ({cell:g} Mpc/h)"
        )
    return int(round(n))


def stage_inputs(w):
    """A stage job needs the LODI model, the halo channels and (after stage 1) the state."""
    inputs = {"model": LODI_MODEL, "halos": halo_source(w)}
    if int(w.stage) > 1:
        inputs["state"] = state_file(w.sim, w.seed, int(w.stage) - 1)
    return inputs


def merge_inputs(w):
    inputs = {"shards": [shard_file(w.sim, w.seed, w.stage, shard) for shard in range(config["generation"]["shards"])]}
    if int(w.stage) > 1:
        inputs["state"] = state_file(w.sim, w.seed, int(w.stage) - 1)
    return inputs


def method_seeds(method):
    """The seeds a generation method runs for: latent overlap all of them, the tiling and
    averaging comparisons the first generation.comparison_seeds."""
    seeds = list(config["seeds"])
    return seeds if method == "latent_overlap" else seeds[: config["generation"]["comparison_seeds"]]


def generated_volumes(methods=None, sims=None, seeds=None):
    """The generated volumes of these methods, simulations and seeds (default: every method of
    generation.methods with its seeds, every simulation generated)."""
    return [
        volume_file(sim, method, seed)
        for method in methods or config["generation"]["methods"]
        for sim in sims or generation_simulations()
        for seed in (seeds or method_seeds(method))
        if seed in method_seeds(method)
    ]


def generation_params():
    """The generation settings a stage, assembly or baseline job depends on (its params): not
    the method list, the snapshots to bring or the halo source, which change no box. Without
    guidance, or its interval, the key is left out, so volumes made before it existed are
    not redone."""
    from lodi_core.generation.jobs import GenerationConfig

    cfg = GenerationConfig.from_config(config)
    unset = [] if cfg.guidance else ["guidance"]
    if not cfg.guidance or cfg.guidance_logsnr_max is None:
        unset.append("guidance_logsnr_max")
    return cfg.to_dict(exclude=unset)


def all_targets():
    targets = expand(figure_file("grids_{sim}"), sim=simulations())
    targets += expand(figure_file("{model}_loss"), model=["halogen", "lodi"])
    targets += expand(halogen_eval_file("summary"), sim=config["simulations"]["test"])
    targets += generated_volumes()
    targets += FIGURE_TARGETS  # figures.smk: the paper's figures and metrics.csv
    targets += BASELINE_TARGETS  # baselines.smk: halo model and LDL volumes and figures
    return targets
