# Helpers of the convergence study's rules (workflow/rules/study.smk): the variants, their
# merged configs, the snapshot chains and the score files.
STUDY = config.get("study")
STUDY_DIR = f"{RESULTS}/study"


def study_section():
    if STUDY is None:
        raise ValueError("this config has no 'study' section: run the study with --configfile config/study.yaml")
    return STUDY


def deep_merge(base, overrides):
    """A copy of the nested dict ``base`` with ``overrides`` applied key by key."""
    out = dict(base)
    for key, value in overrides.items():
        out[key] = (
            deep_merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
        )
    return out


def study_variant(name):
    return study_section()["variants"][name]


def trained_variant(name):
    """The variant whose training a variant uses (itself unless `train_as`)."""
    return study_variant(name).get("train_as", name)


def study_lodi_config(name):
    return deep_merge(config["lodi"], study_variant(trained_variant(name)).get("lodi", {}))


def study_generation(name):
    return deep_merge(generation_params(), study_variant(name).get("generation", {}))


def chain_steps(trained):
    """The snapshot steps of a training chain: every step a variant trained as it asks for."""
    return sorted(
        {
            int(s)
            for v in study_section()["variants"]
            if trained_variant(v) == trained
            for s in study_variant(v)["steps"]
        }
    )


def study_halogen_config():
    return deep_merge(config["halogen"], study_section()["halogen"].get("overrides", {}))


def halogen_epochs():
    return sorted(int(e) for e in study_section()["halogen"]["epochs"])


def lodi_snapshot(variant, step, what="model.pt"):
    return f"{STUDY_DIR}/lodi/{trained_variant(variant)}/step{step}/{what}"


def halogen_snapshot(epoch, what="model.pt"):
    return f"{STUDY_DIR}/halogen/epoch{epoch}/{what}"


def previous(values, value):
    earlier = [v for v in values if v < int(value)]
    return max(earlier) if earlier else None


def prev_lodi_state(w):
    step = previous(chain_steps(w.variant), w.step)
    return {} if step is None else {"prev": lodi_snapshot(w.variant, step, "state.pt")}


def prev_halogen_state(w):
    epoch = previous(halogen_epochs(), w.epoch)
    return {} if epoch is None else {"prev": halogen_snapshot(epoch, "state.pt")}


def study_halos(w):
    """True halos, or the last HALOgen snapshot's prediction."""
    if w.condition == "true_halos":
        return grid_file(w.sim)
    return f"{STUDY_DIR}/halogen/epoch{halogen_epochs()[-1]}/{w.sim}_halos.h5"


def study_scores():
    s = study_section()
    sims, seeds = s.get("simulations", TEST_SIMS), s["seeds"]
    files = []
    for name, v in s["variants"].items():
        for step in v["steps"]:
            for cond in v.get("conditions", ["true_halos"]):
                files += [
                    f"{STUDY_DIR}/scores/lodi/{name}/step{step}_{sim}_{cond}_seed{seed}.csv"
                    for sim in sims
                    for seed in seeds
                ]
    files += [f"{STUDY_DIR}/scores/halogen/epoch{e}_{sim}.csv" for e in halogen_epochs() for sim in sims]
    return files


def study_baselines():
    sims = study_section().get("simulations", TEST_SIMS)
    return [volume_file(sim, m, s) for sim in sims for m in BASELINE_METHODS for s in BASELINE_SEEDS[m]]
