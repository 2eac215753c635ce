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


def study_variants():
    """The variants this run trains and scores: study.only, or every variant."""
    variants = study_section()["variants"]
    only = study_section().get("only") or list(variants)
    unknown = [v for v in only if v not in variants]
    if unknown:
        raise ValueError(f"study.only names {unknown}, which are not among study.variants {sorted(variants)}")
    return only


def trained_variant(name):
    """The variant whose training a variant uses (itself unless `train_as`)."""
    return study_variant(name).get("train_as", name)


def study_lodi_config(name):
    return deep_merge(config["lodi"], study_variant(trained_variant(name)).get("lodi", {}))


def study_generation(name):
    return deep_merge(generation_params(), study_variant(name).get("generation", {}))


def study_tb_calibration(name):
    """The variant's T_b calibration settings (lodi.tb_calibration, _samples, _level): those of
    its training's lodi section, changed by its own (also with train_as: a calibration is
    fitted after training)."""
    own = {k: v for k, v in study_variant(name).get("lodi", {}).items() if k.startswith("tb_calibration")}
    return tb_calibration_settings({**study_lodi_config(name), **own})


def study_calibrates(name):
    return study_tb_calibration(name)["method"] != "none"


def study_variant_simulations(name):
    """The held-out simulations a variant is scored on: its own list, or study.simulations."""
    return study_variant(name).get("simulations") or study_section().get("simulations", TEST_SIMS)


def chain_steps(trained):
    """The snapshot steps of a training chain: every step a variant of this run (study_variants)
    trained as it asks for."""
    return sorted(
        {int(s) for v in study_variants() if trained_variant(v) == trained for s in study_variant(v)["steps"]}
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


def study_halos_file(sim, condition):
    """True halos, or the last HALOgen snapshot's prediction."""
    if condition == "true_halos":
        return grid_file(sim)
    if not halogen_epochs():
        raise ValueError("a study variant scores the 'halogen' condition, but study.halogen.epochs is []")
    return f"{STUDY_DIR}/halogen/epoch{halogen_epochs()[-1]}/{sim}_halos.h5"


def study_halos(w):
    return study_halos_file(w.sim, w.condition)


def study_calibrated_model(variant, step, condition):
    return f"{STUDY_DIR}/lodi_calibrated/{variant}/step{step}_{condition}.pt"


def study_scored_model(w):
    """The model file a score job samples: the snapshot, or the snapshot with the variant's
    T_b calibration on the score's halo condition (the score then has both T_b rows)."""
    if study_calibrates(w.variant):
        return study_calibrated_model(w.variant, w.step, w.condition)
    return lodi_snapshot(w.variant, w.step)


def study_lodi_scores(suffix=".csv"):
    """The LODI score files of this run (``_pk.csv``: their spectra)."""
    files = []
    for name in study_variants():
        v = study_variant(name)
        for step in v["steps"]:
            for cond in v.get("conditions", ["true_halos"]):
                files += [
                    f"{STUDY_DIR}/scores/lodi/{name}/step{step}_{sim}_{cond}_seed{seed}{suffix}"
                    for sim in study_variant_simulations(name)
                    for seed in study_section()["seeds"]
                ]
    return files


def study_scores():
    sims = study_section().get("simulations", TEST_SIMS)
    halogen = [f"{STUDY_DIR}/scores/halogen/epoch{e}_{sim}.csv" for e in halogen_epochs() for sim in sims]
    return study_lodi_scores() + halogen


def study_baselines():
    sims = study_section().get("simulations", TEST_SIMS)
    return [volume_file(sim, m, s) for sim in sims for m in BASELINE_METHODS for s in BASELINE_SEEDS[m]]
