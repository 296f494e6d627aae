"""Baselines as a plain API: resolve and validate the options, then one recorded run per model.

``nlpkit baseline`` is a thin layer over :func:`baseline_config` and :func:`run_baselines`. Every
model goes through :func:`nlpkit.experiment.run_experiment`: fit on train, decision rule tuned on
valid (never on test), test scored, run recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from nlpkit.errors import ConfigError

BASELINE_MODELS = ("majority", "tfidf-lr", "fasttext", "word2vec")
TUNABLE = ("tfidf-lr", "fasttext")


def baseline_config(models: list[str], *, tune: bool = False, cv: int | None = None, tune_seconds: float | None = None,
                    vectors: Path | None = None, seed: int = 0, rule: str = "auto",
                    settings: list[str] | None = None) -> dict[str, Any]:
    """Validate the options and resolve them into one config (checked before any work starts).

    ``settings`` are ``MODEL.KEY=VALUE`` strings (``--set``): any parameter of a selected model's
    class, e.g. ``tfidf-lr.char_ngrams=2,5`` or ``fasttext.dim=100`` (see :func:`parse_setting`).

    Returns ``{"models": [...], "params": {model: params}, "tune", "cv", "tune_seconds", "vectors",
    "seed", "rule", "set"}``.
    """
    from nlpkit.metrics.rules import check_strategy
    from nlpkit.seeds import check_seed

    check_seed(seed)
    check_strategy(rule, option="--rule")
    models = list(dict.fromkeys(models or BASELINE_MODELS))
    unknown = [m for m in models if m not in BASELINE_MODELS]
    if unknown:
        hint = " (fine-tune transformers with `nlpkit finetune`)" if "transformer" in unknown else ""
        raise ConfigError(f"unknown baseline model {', '.join(unknown)}{hint}; choose from {', '.join(BASELINE_MODELS)}.")
    if cv is not None and not tune:
        raise ConfigError("--cv only applies to --tune (tuning by k-fold cross-validation); add --tune or drop --cv.")
    if cv is not None and cv < 2:
        raise ConfigError(f"--cv must be at least 2 folds; got {cv}.")
    if tune_seconds is not None and not tune:
        raise ConfigError("--tune-seconds only applies to --tune (fastText autotune budget); add --tune or drop it.")
    if tune_seconds is not None and not tune_seconds >= 1:  # also nan
        raise ConfigError(f"--tune-seconds must be at least 1 (whole seconds); got {tune_seconds}.")
    if vectors is not None:
        if "word2vec" not in models:
            raise ConfigError("--vectors is only used by the word2vec model; add --model word2vec or drop --vectors.")
        from nlpkit.models.word2vec import sniff_vectors_format

        sniff_vectors_format(vectors)  # unreadable / pickled / unknown format: fail before any training
    if tune and not any(m in TUNABLE for m in models):
        raise ConfigError(f"--tune applies to {' and '.join(TUNABLE)}; none of them is selected.")
    params: dict[str, dict[str, Any]] = {}
    for name in models:
        if name == "majority":
            params[name] = {}
        elif name == "tfidf-lr":
            params[name] = {"seed": seed, "tune": tune, "cv": cv or 0}
        elif name == "fasttext":
            params[name] = {"seed": seed, "tune": tune}
            if tune_seconds is not None:
                params[name]["tune_seconds"] = int(round(tune_seconds))
        elif name == "word2vec":
            params[name] = {"seed": seed, "vectors": str(vectors) if vectors is not None else None}
    overrides: dict[str, dict[str, Any]] = {}
    typed: dict[tuple[str, str], str] = {}  # (model, key) -> the --set as given
    for text in settings or []:
        name, key, value = parse_setting(text, models)
        overrides.setdefault(name, {})[key] = value
        typed[(name, key)] = text.strip()
    from nlpkit.models import get_model_class
    from nlpkit.models.base import ParamError

    # Every model is made now, so that every value is checked before the first one trains.
    for name in models:
        params[name].update(overrides.get(name, {}))
        try:
            get_model_class(name)(**params[name])
        except ParamError as exc:
            source = (f"--set {typed[(name, exc.key)]}" if (name, exc.key) in typed
                      else _OWN_OPTIONS.get(exc.key, f"{name}.{exc.key}"))
            raise ConfigError(f"{source}: {name}'s {exc.key} must be {exc.expected}; got {exc.shown}.") from None
        except ConfigError as exc:
            if name not in overrides:
                raise
            shown = " ".join(f"--set {typed[(name, k)]}" for k in overrides[name])
            raise ConfigError(f"{exc} (from {shown})") from None
    return {"models": models, "params": params, "tune": tune, "cv": cv, "tune_seconds": tune_seconds,
            "vectors": str(vectors) if vectors is not None else None, "seed": seed, "rule": rule,
            "set": overrides}


# parameters set by their own options, not by --set
_OWN_OPTIONS = {"seed": "--seed", "tune": "--tune", "cv": "--cv", "tune_seconds": "--tune-seconds", "vectors": "--vectors"}


def parse_setting(text: str, models: list[str]) -> tuple[str, str, Any]:
    """``"MODEL.KEY=VALUE"`` -> ``(model, key, value)``.

    VALUE is read as JSON when it parses (``30``, ``0.5``, ``true``, ``null``, ``[1, 2]``), as a tuple
    when it holds commas (``2,5`` -> ``(2, 5)``; each item read the same way), else as a string
    (``none`` is None). The model must be one of ``models`` and KEY one of its parameters.
    """
    import json

    from nlpkit.models import get_model_class

    target, sep, raw = text.partition("=")
    name, dot, key = target.strip().rpartition(".")
    if not sep or not dot or not name or not key:
        raise ConfigError(f"--set {text!r}: expected MODEL.KEY=VALUE, e.g. --set tfidf-lr.C=30.")
    if name not in BASELINE_MODELS:
        raise ConfigError(f"--set {text!r}: unknown baseline model {name!r}; choose from {', '.join(BASELINE_MODELS)}.")
    if name not in models:
        raise ConfigError(f"--set {text!r}: {name} is not among the models to train; add --model {name} or drop it.")
    if key in _OWN_OPTIONS:
        raise ConfigError(f"--set {text!r}: {key} has its own option; use {_OWN_OPTIONS[key]}.")
    known = sorted(k for k in get_model_class(name).param_defaults if k not in _OWN_OPTIONS)
    if key not in known:
        raise ConfigError(f"--set {text!r}: {name} has no parameter {key!r}; it has {', '.join(known) or 'none'}.")

    def value_of(item: str) -> Any:
        item = item.strip()
        if item.lower() == "none":
            return None
        try:
            value = json.loads(item)
        except ValueError:
            return item
        return tuple(value) if isinstance(value, list) else value

    raw = raw.strip()
    value = tuple(value_of(v) for v in raw.split(",")) if "," in raw and not raw.startswith("[") else value_of(raw)
    return name, key, value


def run_baselines(split, config: dict[str, Any], *, runs_root: Path | None = None,
                  progress=None, on_run: Callable[[Any], None] | None = None) -> list:
    """Train every model of ``config`` (from :func:`baseline_config`) on ``split``; one run each.

    ``split`` is a :class:`nlpkit.data.Split` or the path of a split folder.

    ``progress`` is an optional ``rich.progress.Progress``: one task follows the stages of each
    experiment, models add their own bars. ``on_run(run)`` is called as each run completes.
    """
    from nlpkit.data import load_split
    from nlpkit.experiment import run_experiment
    from nlpkit.models import get_model_class

    if not hasattr(split, "parts"):
        split = load_split(split)
    check_baselines(split, config)
    rule = config.get("rule", "auto")
    runs = []
    stage_task = progress.add_task("baseline", total=len(config["models"])) if progress is not None else None
    for name in config["models"]:
        model = get_model_class(name)(**config["params"][name])

        def stage(what: str, name: str = name) -> None:
            if progress is not None:
                progress.update(stage_task, description=f"{name}: {what}")

        run_config = {"command": "baseline", "model": name, "params": model.get_params(),
                      **{k: v for k, v in config.items() if k not in ("params", "models")}}
        run = run_experiment(model, split, kind="baseline", config=run_config, seed=config["seed"],
                             runs_root=runs_root, rule_strategy=rule, progress=stage, fit_progress=progress)
        runs.append(run)
        if progress is not None:
            progress.advance(stage_task)
        if on_run is not None:
            on_run(run)
    return runs


def check_baselines(split, config: dict[str, Any]) -> None:
    """Check ``config`` (from :func:`baseline_config`) against ``split`` before any model trains:
    the ``--rule`` for its task and labels, and each model's parameters for its size (e.g.
    tfidf-lr's cross-fit folds). :func:`run_baselines` calls it; call it on every fold of a k-fold
    split first to fail before the first fold trains."""
    from nlpkit.metrics.rules import check_strategy
    from nlpkit.models import get_model_class

    check_strategy(config.get("rule", "auto"), split.task, len(split.label_names), option="--rule",
                   data=str(split.path))
    if split.train is None:
        return  # run_experiment says what is missing
    n_docs = len(split.train) + (len(split.valid) if split.valid is not None else 0)
    for name in config["models"]:
        get_model_class(name)(**config["params"][name]).check_data(split.task, n_docs)


def split_notes(split) -> tuple[list[str], dict[str, dict[str, int]]]:
    """Warnings about ``split`` itself, to give once (not per model), and what they cover:
    labels of its valid or test part without a train document (computed from the parts, so split
    folders written before split.json recorded them are covered too). A k-fold split has none here:
    each fold's runs say it.

    Returns ``(notes, missing)``, ``missing`` as :func:`nlpkit.split.labels_missing_from_train`.
    """
    from nlpkit.split import labels_missing_from_train, missing_labels_notes

    missing = labels_missing_from_train(split.parts)
    return missing_labels_notes(missing), missing


def summarize(run) -> dict[str, Any]:
    """One row of the results table / JSON for a run."""
    metrics = run.metrics()["test"]
    m = metrics["metrics"]
    timings = run.info.get("timings") or {}
    task = metrics.get("task")
    return {
        "model": run.model,
        "task": task,
        "micro_f1": m.get("micro_f1"),
        "macro_f1": m.get("macro_f1"),
        "accuracy": m.get("accuracy"),
        "fit_seconds": timings.get("fit_seconds"),
        "predict_docs_per_s": timings.get("predict_docs_per_s"),
        "model_size_bytes": run.info.get("model_size_bytes"),
        "fold": (run.info.get("data") or {}).get("fold"),
        "fit_info": run.info.get("fit_info") or {},
        "run": str(run.path),
    }


# said when a model kept its reference although another option scored higher: its choice rule
# (nlpkit.metrics.choose_over_reference) replaces the reference only on a clear lead
_WITHIN_SE = "; kept as the reference: that lead is within about one standard error"


def _ngrams_name(rng) -> str:
    lo, hi = rng
    return "unigrams" if (lo, hi) == (1, 1) else f"{lo}-{hi}-grams"


def choices(row: dict[str, Any]) -> list[tuple[str, str]]:
    """What a :func:`summarize` row's model chose by itself, on train + valid, as ``(choice,
    evidence)`` pairs, the evidence being the scores it chose by: tfidf-lr's word n-grams
    (out-of-fold) or its tuned C and n-grams (``--tune``), or no cross-fit on large data;
    fastText's setting, or the average of its settings, and autotune (valid).
    A reference kept against a higher score says why: the lead was within one standard error."""
    info = row.get("fit_info") or {}
    out: list[tuple[str, str]] = []
    ngrams = info.get("ngram_choice")
    if ngrams:
        chosen, ref = tuple(ngrams["chosen"]), tuple(ngrams["reference"])
        other = (1, 1) if chosen == ref else ref
        scores = ngrams.get("out_of_fold") or ngrams["valid"]  # cross-fitted, or chosen on valid
        mine, theirs = scores["%d-%d" % chosen], scores["%d-%d" % other]
        evidence = f"{ngrams['metric']} {mine:.3f} against {theirs:.3f} for {_ngrams_name(other)}"
        if chosen == ref and theirs > mine:
            evidence += _WITHIN_SE
        out.append((f"word {_ngrams_name(chosen)}", evidence))
    large = info.get("cross_fit")
    if large and not large.get("folds"):  # too many documents for the default cross-fit
        out.append(("no cross-fit", f"{large['documents']:,} documents in train + valid, over "
                                    f"cross_fit_max_docs={large['max_documents']:,}: fitted on train, "
                                    "rule tuned on valid"))
    tuning = info.get("tuning")
    if tuning and tuning.get("results") and "C" in info:
        def label(result) -> str:
            return f"C={result['C']:g} with word {_ngrams_name(result['ngram_range'])}"

        chosen_label = label({"C": info["C"], "ngram_range": info["ngram_range"]})
        by_label = {label(r): r["score"] for r in tuning["results"]}
        others = ", ".join(f"{v:.3f} for {k}" for k, v in by_label.items() if k != chosen_label)
        out.append((chosen_label, f"{tuning['selected_by']}, {tuning['metric']} {by_label[chosen_label]:.3f}"
                                  + (f" against {others}" if others else "")))
    average = info.get("average")
    if average:
        valid = average["valid"]
        *members, mean = valid  # each model's name, then the average's
        out.append((f"the average of {' and '.join(members)}",
                    f"valid {average['metric']} {valid[mean]:.3f}; each alone "
                    + ", ".join(f"{valid[name]:.3f}" for name in members)))
    settings = info.get("settings_choice")
    if settings:
        chosen = settings["chosen"]
        valid = settings["valid"]
        others = ", ".join(f"{v:.3f} for {k}" for k, v in valid.items() if k != chosen)
        evidence = f"valid {settings['metric']} {valid[chosen]:.3f} against {others}"
        if chosen == settings.get("reference") and max(valid.values()) > valid[chosen]:
            evidence += _WITHIN_SE
        out.append((chosen, evidence))
    tuned = info.get("autotune")
    if tuned and "valid" in tuned:
        first, second = ("autotune", "defaults") if tuned["kept"] == "autotune" else ("defaults", "autotune")
        what = {"autotune": "autotune's model", "defaults": "the default options"}
        evidence = f"valid {tuned['metric']} {tuned['valid'][first]:.3f} against {tuned['valid'][second]:.3f}"
        if first == "defaults" and tuned["valid"][second] > tuned["valid"][first]:
            evidence += _WITHIN_SE
        out.append((f"{what[first]} over {what[second]}", evidence))
    return out


def cross_validation_summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per model, over the folds of a k-fold split: mean and sample standard deviation of the
    headline metric (accuracy for single-label data, else micro-F1) and of macro-F1, the per-fold
    values in fold order, and the mean fit time. ``rows`` are :func:`summarize` rows."""
    import statistics

    from nlpkit.metrics import headline_metric

    out: list[dict[str, Any]] = []
    for name in dict.fromkeys(r["model"] for r in rows):
        mine = sorted((r for r in rows if r["model"] == name), key=lambda r: r["fold"])
        key = headline_metric(mine[0]["task"])

        def spread(values: list[float]) -> tuple[float, float | None]:
            return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)

        mean, sd = spread([r[key] for r in mine])
        macro_mean, macro_sd = spread([r["macro_f1"] for r in mine])
        out.append({"model": name, "task": mine[0]["task"], "metric": key, "folds": [r["fold"] for r in mine],
                    "mean": mean, "sd": sd, "per_fold": [r[key] for r in mine],
                    "macro_f1_mean": macro_mean, "macro_f1_sd": macro_sd,
                    "fit_seconds_mean": statistics.fmean(r["fit_seconds"] or 0.0 for r in mine)})
    return out
