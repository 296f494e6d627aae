"""Baselines as a plain API: resolve and validate the options, then one recorded run per model.

``nlpkit baseline`` is a thin layer over :func:`baseline_config` and :func:`run_baselines`. Every
model goes through :func:`nlpkit.experiment.run_experiment`: fit on train, decision rule tuned on
valid (never on test), test scored, run recorded. Nothing here names a model family: the baseline
families are the registered ones (:data:`nlpkit.models.REGISTRY`), and each class says what it needs
(:class:`nlpkit.models.base.Classifier`: ``baseline``, ``baseline_params``, ``describe_choices``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

from nlpkit.errors import ConfigError


def baseline_models() -> list[str]:
    """The families ``nlpkit baseline`` trains, in registry order: every registered one whose class
    keeps ``baseline = True`` (:class:`nlpkit.models.base.Classifier`)."""
    from nlpkit.models import REGISTRY

    return [name for name in REGISTRY if _is_baseline(name)]


def _is_baseline(name: str) -> bool:
    from nlpkit.models import REGISTRY, get_model_class

    return name in REGISTRY and get_model_class(name).baseline


def _taking(param: str) -> list[str]:
    """The baseline families with a parameter ``param`` (the ones an option of that name reaches)."""
    from nlpkit.models import get_model_class

    return [name for name in baseline_models() if param in get_model_class(name).param_defaults]


def baseline_config(models: list[str], *, tune: bool = False, cv: int | None = None, tune_seconds: float | None = None,
                    vectors: Path | None = None, seed: int = 0, rule: str = "auto",
                    settings: list[str] | None = None) -> dict[str, Any]:
    """Validate the options and resolve them into one config (checked before any work starts).

    Each model's parameters come from its class (``baseline_params``): the options given reach the
    parameters of the same name. ``settings`` are ``MODEL.KEY=VALUE`` strings (``--set``): any
    parameter of a selected model's class, e.g. ``tfidf-lr.char_ngrams=2,5`` or ``fasttext.dim=100``
    (see :func:`parse_setting`).

    Returns ``{"models": [...], "params": {model: params}, "tune", "cv", "tune_seconds", "vectors",
    "seed", "rule", "set"}``.
    """
    from nlpkit.metrics.rules import check_strategy
    from nlpkit.models import REGISTRY, get_model_class
    from nlpkit.models.base import BaselineOptions, ParamError
    from nlpkit.seeds import check_seed

    check_seed(seed)
    check_strategy(rule, option="--rule")
    models = list(dict.fromkeys(models or baseline_models()))
    unknown = [m for m in models if not _is_baseline(m)]
    if unknown:
        hints = [get_model_class(m).baseline_hint for m in unknown if m in REGISTRY]
        hint = f" ({'; '.join(h for h in hints if h)})" if any(hints) else ""
        raise ConfigError(f"unknown baseline model {', '.join(unknown)}{hint}; choose from {', '.join(baseline_models())}.")
    if cv is not None and not tune:
        raise ConfigError("--cv only applies to --tune (tuning by k-fold cross-validation); add --tune or drop --cv.")
    if cv is not None and cv < 2:
        raise ConfigError(f"--cv must be at least 2 folds; got {cv}.")
    if tune_seconds is not None and not tune:
        raise ConfigError("--tune-seconds only applies to --tune (fastText autotune budget); add --tune or drop it.")
    if tune_seconds is not None and not tune_seconds >= 1:  # also nan
        raise ConfigError(f"--tune-seconds must be at least 1 (whole seconds); got {tune_seconds}.")
    classes = {name: get_model_class(name) for name in models}
    if vectors is not None and not any("vectors" in cls.param_defaults for cls in classes.values()):
        users = _taking("vectors")
        raise ConfigError(f"--vectors is only used by the {' and '.join(users)} model; "
                          f"add --model {users[0] if users else 'NAME'} or drop --vectors.")
    options = BaselineOptions(seed=seed, tune=tune, cv=cv, tune_seconds=tune_seconds,
                              vectors=str(vectors) if vectors is not None else None)
    # (a family checks its own options here, e.g. word2vec reads --vectors: before any training)
    params: dict[str, dict[str, Any]] = {name: cls.baseline_params(options) for name, cls in classes.items()}
    if tune and not any("tune" in cls.param_defaults for cls in classes.values()):
        raise ConfigError(f"--tune applies to {' and '.join(_taking('tune'))}; none of them is selected.")
    overrides: dict[str, dict[str, Any]] = {}
    typed: dict[tuple[str, str], str] = {}  # (model, key) -> the --set as given
    for text in settings or []:
        name, key, value = parse_setting(text, models)
        overrides.setdefault(name, {})[key] = value
        typed[(name, key)] = text.strip()

    # Every model is made now, so that every value is checked before the first one trains.
    for name, cls in classes.items():
        params[name].update(overrides.get(name, {}))
        try:
            cls(**params[name])
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
            "vectors": options.vectors, "seed": seed, "rule": rule, "set": overrides}


# the model parameters set by baseline options (nlpkit.models.base.BaselineOptions), not by --set
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
    if not _is_baseline(name):
        raise ConfigError(f"--set {text!r}: unknown baseline model {name!r}; choose from {', '.join(baseline_models())}.")
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


def fold_views(split, fold: int | None = None) -> list:
    """What baselines run on: fold ``fold`` of a k-fold split, every fold of one (``fold`` None),
    or a plain split itself (see :func:`nlpkit.data.fold_split`)."""
    from nlpkit.data import fold_split

    if fold is not None:
        return [fold_split(split, fold)]
    if split.folds:
        return [fold_split(split, k) for k in range(len(split.folds))]
    return [split]


def run_baselines(split, config: dict[str, Any], *, fold: int | None = None, runs_root: Path | None = None,
                  progress=None, on_run: Callable[[Any], None] | None = None, extra_info: dict | None = None) -> list:
    """Train every model of ``config`` (from :func:`baseline_config`) on ``split``; one run each.

    ``split`` is a :class:`nlpkit.data.Split` or the path of a split folder. On a k-fold split every
    fold in turn is held out (one run per model and fold, fold by fold), or fold ``fold`` only;
    ``fold`` on a plain split is an error. Every fold is checked (:func:`check_baselines`) before
    the first model trains.

    ``progress`` is an optional ``rich.progress.Progress``: one task follows the stages of each
    experiment, models add their own bars. ``on_run(run)`` is called as each run completes.
    ``extra_info``: more run.json fields for every run (e.g. a learning-curve point's role).
    """
    from nlpkit.data import load_split

    if isinstance(split, (str, os.PathLike)):
        split = load_split(split)
    views = fold_views(split, fold)
    for view in views:
        check_baselines(view, config)
    runs: list = []
    for view in views:
        runs += _run_models(view, config, runs_root=runs_root, progress=progress, on_run=on_run, extra_info=extra_info)
    return runs


def _run_models(split, config: dict[str, Any], *, runs_root, progress, on_run, extra_info=None) -> list:
    """One recorded run per model of ``config`` on one split (or one fold's view of it)."""
    from nlpkit.experiment import run_experiment
    from nlpkit.models import get_model_class

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
                             runs_root=runs_root, rule_strategy=rule, progress=stage, fit_progress=progress,
                             extra_info=extra_info)
        runs.append(run)
        if progress is not None:
            progress.advance(stage_task)
        if on_run is not None:
            on_run(run)
    return runs


def check_baselines(split, config: dict[str, Any]) -> None:
    """Check ``config`` (from :func:`baseline_config`) against ``split`` before any model trains:
    the ``--rule`` for its task and labels, and each model's parameters for its size (e.g.
    tfidf-lr's cross-fit folds). :func:`run_baselines` calls it on every fold first."""
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
        "seed": run.info.get("seed"),
        "fit_info": run.info.get("fit_info") or {},
        "run": str(run.path),
    }


def choices(row: dict[str, Any]) -> list[tuple[str, str]]:
    """What a :func:`summarize` row's model chose by itself, on train + valid, as ``(choice,
    evidence)`` pairs, the evidence being the scores it chose by: its family's own account
    (``describe_choices``) of its recorded ``fit_info``. A row without a model has none."""
    from nlpkit.models import get_model_class

    if not row.get("model"):
        return []
    return get_model_class(row["model"]).describe_choices(row.get("fit_info") or {})


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
