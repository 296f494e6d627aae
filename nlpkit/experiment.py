"""One experiment, the same for every model: fit -> tune the decision rule on valid -> predict test
-> score -> record one run.

Baseline and fine-tuning commands both call :func:`run_experiment`; they differ only in the model
they pass in and the options they record in ``config``.
"""

from __future__ import annotations

import contextlib
import copy
import os
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from nlpkit.errors import ConfigError, DataError
from nlpkit.runs import Run, create_run, machine_info, package_versions

DEFAULT_VALID_FRACTION = 0.1

Stage = Callable[[str], Any]


def run_experiment(model, split, *, kind: str = "baseline", config: dict, seed: int,
                   runs_root=None, rule_strategy: str = "auto", progress: Stage | None = None,
                   extra_info: dict | None = None, fit_progress=None,
                   valid_fraction: float = DEFAULT_VALID_FRACTION) -> Run:
    """Fit ``model`` on ``split`` and record one complete run.

    Parameters
    ----------
    model
        An unfitted :class:`nlpkit.models.base.Classifier`.
    split
        A :class:`nlpkit.data.Split` with train and test parts. Without a valid part, one is
        carved from train (stratified, seeded by ``seed``) and recorded in the run's config.
        A model whose ``cross_fit_folds(task, n_docs)`` is k > 0 (tf-idf + LR on multi-label data) is
        cross-fitted instead: k stratified folds over train + valid give every document an
        out-of-fold score, the decision rule is tuned on all of them, and the model is refitted on
        train + valid. Test stays untouched either way.
    kind
        Run kind: "baseline" or "finetune".
    config
        Every resolved option of the command (recorded as is, plus what this function adds).
    seed
        Seed for everything random here (valid carving); models take their own seed parameter.
    runs_root
        Runs folder (default ``$NLPKIT_RUNS_DIR`` or ``./runs``).
    rule_strategy
        Decision-rule strategy for :func:`nlpkit.metrics.tune_rule`.
    progress
        Optional ``callable(stage: str)`` called as each stage starts ("fit", "predict-test", ...).
    extra_info
        More run.json fields (e.g. the pretraining run a fine-tune starts from).
    fit_progress
        Passed to ``model.fit(..., progress=fit_progress)``.
    valid_fraction
        Share of train carved out as valid when the split has none.

    Returns
    -------
    Run
        The complete run. ``run.info["warnings"]`` lists what a user should know (e.g. labels
        present in test but never in train: reported, scored as misses, never a crash).
    """
    from nlpkit.metrics import evaluate, tune_rule
    from nlpkit.metrics.rules import check_strategy
    from nlpkit.split import kfold

    stage = progress or (lambda _name: None)
    train, test = split.train, split.test
    if train is None:
        if getattr(split, "folds", None):
            raise DataError(
                f"split {split.path} has {len(split.folds)} folds but no train part; run on one fold "
                f"(`--fold N` on the command line, nlpkit.data.fold_split in Python)."
            )
        raise DataError(f"split {split.path} has no train part; re-create it with `nlpkit split`.")
    if test is None:
        raise DataError(f"split {split.path} has no test part; re-create it with `nlpkit split --test-size ...`.")
    if not 0 < valid_fraction < 1:
        raise ConfigError(f"valid fraction must be between 0 and 1, got {valid_fraction}.")
    config = copy.deepcopy(dict(config))
    config.setdefault("rule_strategy", rule_strategy)
    task, label_names = split.task, list(split.label_names)
    notes: list[str] = []  # run.json "warnings": what a user should read

    valid = split.valid
    if valid is None:
        stage("carve-valid")
        train, valid = carve_valid(train, fraction=valid_fraction, seed=seed)
        config["valid_carved_from_train"] = True
        config["valid_fraction"] = valid_fraction
    else:
        config.setdefault("valid_carved_from_train", False)

    # before any training: a rule or a parameter that cannot work on this data
    check_strategy(rule_strategy, task, len(label_names), data=str(split.path))
    model.check_data(task, len(train) + len(valid))
    folds = cross_fit_folds(model, task, len(train) + len(valid), len(label_names))
    data = join_parts(train, valid) if folds else None  # what a cross-fitted model learns from
    unseen = labels_unseen_in_train(data if folds else train, test)
    if unseen:
        shown = ", ".join(unseen[:10]) + (" ..." if len(unseen) > 10 else "")
        notes.append(
            f"{len(unseen)} label(s) occur in test but never in train ({shown}); "
            f"no model can predict them, they count as misses."
        )

    with create_run(kind, model.family, runs_root=runs_root) as run:
        run.log(f"{kind} run of {model!r} on {split.path} (task {task}, {len(label_names)} labels)")
        run.log(f"parts: train {len(train)}, valid {len(valid)}"
                f"{' (carved from train)' if config['valid_carved_from_train'] else ''}, test {len(test)}")
        for note in notes:
            run.log(f"warning: {note}")

        with _model_warnings(run, notes):
            t0 = time.perf_counter()
            if folds:
                # Cross-fitting: out-of-fold scores of every train and valid document tune the rule,
                # then the model is refitted on both. The valid part's own scores stay out-of-fold.
                stage("cross-fit")
                fold_of = kfold(data.y, folds, seed=seed)
                oof = _check_scores(model.cross_fit(data, fold_of, progress=fit_progress), len(data),
                                    len(label_names), model)
                fit_seconds = time.perf_counter() - t0
                y_tune, scores_tune = data.y, oof
                scores_valid = oof[len(train):]
                valid_seconds = 0.0
                config["cross_fit"] = {"folds": folds, "documents": len(data)}
                run.log(f"cross-fit: {folds} folds over train + valid ({len(data)} documents), "
                        f"then one fit on all of them: {fit_seconds:.2f} s")
            else:
                stage("fit")
                model.fit(train, valid, progress=fit_progress)
                fit_seconds = time.perf_counter() - t0
                run.log(f"fit: {fit_seconds:.2f} s")

                stage("predict-valid")
                t0 = time.perf_counter()
                scores_valid = _check_scores(model.predict_proba(valid.texts), len(valid), len(label_names), model)
                valid_seconds = time.perf_counter() - t0
                y_tune, scores_tune = valid.y, scores_valid

            stage("tune-rule")
            # Empty predictions are legal when any training or tuning document has no label (normal in
            # emotion and biomedical data), not only when the tuning documents happen to hold one.
            at_least_one = not (has_unlabelled(train) or has_unlabelled(valid))
            rule = tune_rule(y_tune, scores_tune, task=task, strategy=rule_strategy, at_least_one=at_least_one)
            run.log(f"decision rule (tuned on {'out-of-fold scores of train + valid' if folds else 'valid'}): "
                    f"{rule!r}")

            stage("predict-test")
            t0 = time.perf_counter()
            scores_test = _check_scores(model.predict_proba(test.texts), len(test), len(label_names), model)
            predict_seconds = time.perf_counter() - t0
            docs_per_s = len(test) / predict_seconds if predict_seconds > 0 else None
            batch1 = one_by_one_docs_per_s(model, test.texts)  # the serving case: one request, one document
            batched = batched_docs_per_s(model, test.texts)
            run.log(f"predict test: {len(test)} docs in {predict_seconds:.3f} s")

            stage("evaluate")
            pred_test = np.asarray(rule.predict(scores_test), dtype=bool)
            test_eval = evaluate(test.y, scores_test, task=task, label_names=label_names, rule=rule)
            valid_eval = evaluate(valid.y, scores_valid, task=task, label_names=label_names, rule=rule)
            run.write_json("metrics.json", {"test": test_eval, "valid": valid_eval})
            run.write_predictions(test.ids, scores_test, pred_test.astype(np.uint8))
            headline = {k: v for k, v in test_eval["metrics"].items() if k in ("accuracy", "micro_f1", "macro_f1")}
            run.log(f"test: {headline}")

            stage("save")
            model.save(run.model_dir)

        run.info.update({
            "config": config,
            "seed": seed,
            "versions": package_versions(),
            "data": data_info(split, n_train=len(train), n_valid=len(valid), n_test=len(test)),
            "model_params": model.get_params(),
            "fit_info": model.fit_info(),
            "timings": {
                "fit_seconds": fit_seconds,
                "predict_valid_seconds": valid_seconds,
                "predict_seconds": predict_seconds,
                "predict_docs_per_s": docs_per_s,
                "predict_docs_per_s_batch1": batch1,
                f"predict_docs_per_s_batch{THROUGHPUT_BATCH}": batched,
            },
            "model_size_bytes": dir_size(run.model_dir),
            # where it ran: the cost figures above mean little without it
            "machine": machine_info((model.fit_info() or {}).get("device")),
            "rule": rule.to_dict(),
            "labels_unseen_in_train": unseen,
            "warnings": notes,
            **(extra_info or {}),
        })
    return run.run


BATCH1_DOCS = 32  # test documents predicted one at a time for the batch-1 throughput
# The second serving case: small request batches, as a service batches concurrent requests; 32 is
# also the transformers' prediction batch. Timed over THROUGHPUT_DOCS documents.
THROUGHPUT_BATCH = 32
THROUGHPUT_DOCS = 256


def one_by_one_docs_per_s(model, texts, n: int = BATCH1_DOCS) -> float | None:
    """Documents per second predicting the first ``n`` texts one call each (None without texts): the
    serving case, recorded with every run and re-measured by ``nlpkit report --measure-cost``."""
    return model.docs_per_s(texts[:n], 1)


def batched_docs_per_s(model, texts, n: int = THROUGHPUT_DOCS) -> float | None:
    """Documents per second predicting the first ``n`` texts in calls of :data:`THROUGHPUT_BATCH`."""
    return model.docs_per_s(texts[:n], THROUGHPUT_BATCH)


def recorded_rule(run, n_labels: int | None = None):
    """The decision rule ``run`` recorded (run.json's ``rule``), tuned and, with ``n_labels``, fitting
    that many labels; a lost or damaged rule is an error naming the run's run.json, never a
    silent fallback to another rule (see :func:`nlpkit.metrics.rules.saved_rule`)."""
    from nlpkit.metrics.rules import saved_rule

    return saved_rule(run.info.get("rule"), Path(run.path) / "run.json", n_labels)


@contextlib.contextmanager
def _model_warnings(run, notes: list[str]):
    """Write warnings raised while fitting/scoring into log.txt (nlpkit's own also into ``notes``),
    then issue them again so the caller's own warning handling still sees them."""
    caught: list = []
    ok = False
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
        ok = True
    finally:
        for w in caught:
            if ok:
                run.log(f"warning ({w.category.__name__}): {w.message}")
                if w.category.__module__.startswith("nlpkit") and str(w.message) not in notes:
                    notes.append(str(w.message))
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def cross_fit_folds(model, task: str, n_docs: int, n_labels: int | None = None) -> int:
    """Folds the model asks for on ``task`` data (0 = no cross-fitting), or 0 when there are fewer
    than two documents per fold."""
    folds = int(model.cross_fit_folds(task, n_docs, n_labels))
    return folds if folds >= 2 and n_docs >= 2 * folds else 0


def join_parts(*parts):
    """One Dataset holding ``parts`` in order (see :func:`nlpkit.data.join_datasets`)."""
    from nlpkit.data import join_datasets

    return join_datasets(*parts)


def has_unlabelled(part) -> bool:
    """Whether some document of ``part`` (a Dataset) has no label."""
    return bool(len(part) and (np.asarray(part.y.sum(axis=1)).ravel() == 0).any())


def labels_unseen_in_train(train, test) -> list[str]:
    """Names of labels with a positive in ``test`` but none in ``train`` (same label space)."""
    in_train = np.asarray(train.y.sum(axis=0)).ravel() > 0
    in_test = np.asarray(test.y.sum(axis=0)).ravel() > 0
    return [name for name, a, b in zip(test.label_names, in_train, in_test) if b and not a]


def data_info(split, **sizes: int) -> dict[str, Any]:
    """The ``data`` block of run.json: where the data came from and fingerprints to compare runs."""
    manifest = split.manifest or {}
    parts = manifest.get("parts") or {}
    return {
        "split_dir": str(Path(split.path).resolve()),
        "source": _manifest_source(manifest),
        "sources": _manifest_sources(manifest),
        "source_sha256": _manifest_source_sha256(manifest),
        "split_sha256": split.fingerprint,
        "test_sha256": split.test_fingerprint,
        "test_file_sha256": (parts.get("test") or {}).get("sha256"),
        "label_names": list(split.label_names),
        "task": split.task,
        "fold": manifest.get("fold"),  # the fold of a k-fold split (nlpkit.data.fold_split), else None
        **sizes,
    }


def _manifest_sources(manifest: dict) -> dict[str, dict]:
    """``{role: {"path", "sha256"}}`` of the files a split was made from (``nlpkit split`` manifest)."""
    sources = manifest.get("sources")
    if isinstance(sources, dict):
        return {str(k): v for k, v in sources.items() if isinstance(v, dict)}
    source = manifest.get("source")  # a hand-written manifest: a path, or {"path", "sha256"}
    if isinstance(source, dict):
        return {"input": source}
    if source:
        return {"input": {"path": str(source), "sha256": manifest.get("source_sha256")}}
    return {}


def _manifest_source(manifest: dict) -> str | None:
    sources = _manifest_sources(manifest)
    if list(sources) == ["input"]:
        return sources["input"].get("path")
    return None


def _manifest_source_sha256(manifest: dict) -> str | None:
    """sha256 of the one input file; with separate train/valid/test files, one hash over theirs."""
    import hashlib

    sources = _manifest_sources(manifest)
    if list(sources) == ["input"]:
        return sources["input"].get("sha256")
    hashes = {role: src.get("sha256") for role, src in sources.items()}
    if not hashes or not all(hashes.values()):
        return None
    payload = "\n".join(f"{role}:{h}" for role, h in sorted(hashes.items()))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def dir_size(path) -> int:
    """Total bytes of the files under ``path``."""
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for fn in files:
            total += os.path.getsize(os.path.join(dirpath, fn))
    return total


def _check_scores(scores, n_docs: int, n_labels: int, model) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (n_docs, n_labels):
        raise RuntimeError(f"{model.family} returned scores of shape {scores.shape}, expected {(n_docs, n_labels)}")
    if not np.isfinite(scores).all():
        raise RuntimeError(f"{model.family} returned non-finite scores")
    return scores


# --- carving a validation part --------------------------------------------------------------

def carve_valid(train, *, fraction: float = DEFAULT_VALID_FRACTION, seed: int):
    """Split ``train`` into (train, valid) with ``fraction`` of documents in valid.

    Uses :func:`nlpkit.split.carve`, the same iterative stratification as ``nlpkit split``, so the
    carved part keeps every label's share as far as the counts allow. At least one document goes
    to valid.
    """
    from nlpkit.split import carve

    n = len(train)
    if n < 2:
        raise DataError(f"train has {n} document(s): too few to carve a validation part; add a valid part to the split.")
    size = fraction if fraction * n >= 1 else 1  # a count of 1 when the fraction rounds to nothing
    kept, carved = carve(train.y, size, order=1, seed=seed)
    return train.subset(kept), train.subset(carved)
