"""Where tfidf-lr's time goes, and what each out-of-fold choice buys (issue #22).

On each development-suite split (``bench/suite.py``'s, same folds as ``nlpkit baseline``: train +
valid, ``nlpkit.split.kfold`` with 3 folds, seed 0), one after the other in one process:

* ``fit``: one fit of the default n-grams on train + valid (what every variant repeats);
* ``cross-fit``: the cross-fit with one candidate (3 fold fits + the final fit), its out-of-fold score;
* ``unigrams``: the same for word unigrams (the n-gram choice's extra cost);
* ``default``: the default cross-fit with its choices (forced: the run may not cross-fit this data);
* ``unweighted``: the cross-fit without class weights (``class_weight=None``), paired against balanced
  on the out-of-fold predictions (68 % interval, about one standard error);
* ``ovr`` (single-label data): the cross-fit with one binary liblinear model per class
  (``multiclass="ovr"``), paired against the multinomial model the same way;
* ``peer``: the scikit-learn recipe of ``bench/suite.py``, fitted on train + valid, test predicted.

Out-of-fold scores are the headline metric under each candidate's own tuned ``auto`` rule, as the run
records them. Nothing here reads test labels. Seconds are wall clock, both cores.

Usage: python bench/tfidf_profile.py [--datasets a,b] [--work DIR] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import suite  # noqa: E402  (the splits and the peer recipe)


def oof_run(data, fold_of, **params):
    """``(seconds, out-of-fold scores, model)`` of one cross-fit with ``params`` over the defaults."""
    from nlpkit.models.tfidf_lr import TfidfLogisticRegression

    model = TfidfLogisticRegression(**params)
    t0 = time.perf_counter()
    oof = model.cross_fit(data, fold_of)
    return time.perf_counter() - t0, oof, model


def decisions(y, scores, task: str, at_least_one: bool) -> np.ndarray:
    from nlpkit.metrics import tune_rule

    return np.asarray(tune_rule(y, scores, task=task, at_least_one=at_least_one).predict(scores), dtype=np.uint8)


def profile(split, name: str) -> dict:
    from nlpkit.experiment import has_unlabelled, join_parts
    from nlpkit.metrics import headline_metric, paired_bootstrap_diff
    from nlpkit.models.tfidf_lr import TfidfLogisticRegression
    from nlpkit.split import kfold

    data = join_parts(split.train, split.valid)
    task, metric = split.task, headline_metric(split.task)
    at_least_one = not has_unlabelled(data)
    fold_of = kfold(data.y, 3, seed=0)
    row: dict = {"dataset": name, "task": task, "documents": len(data), "labels": len(split.label_names),
                 "median_words": float(np.median([len(t.split()) for t in data.texts]))}

    model = TfidfLogisticRegression()
    model._set_label_space(data)
    t0 = time.perf_counter()
    _vecs, X = model._fit_transform(data.texts, tuple(model.params["ngram_range"]))
    row["vectorize_s"] = time.perf_counter() - t0
    row["nnz"] = int(X.nnz)
    row["features"] = int(X.shape[1])

    t0 = time.perf_counter()
    TfidfLogisticRegression(cross_fit=0, choose_ngrams=False).fit(data)
    row["fit_s"] = time.perf_counter() - t0

    preds = {}
    variants = [("cross_fit", {"choose_ngrams": False}),
                ("unigrams", {"choose_ngrams": False, "ngram_range": (1, 1)}),
                ("default", {}),
                ("unweighted", {"choose_ngrams": False, "class_weight": None})]
    if task == "single":
        variants.append(("ovr", {"choose_ngrams": False, "multiclass": "ovr", "prior_shift": False}))
    for key, params in variants:
        seconds, oof, fitted = oof_run(data, fold_of, **params)
        preds[key] = decisions(data.y, oof, task, at_least_one)
        row[f"{key}_s"] = seconds
        row[f"{key}_oof"] = fitted.fit_info()["cross_fit"][f"out_of_fold_{'micro_f1' if task == 'multi' else 'accuracy'}"]
        if key == "default":
            row["default_ngrams"] = fitted.fit_info()["ngram_range"]
        print(f"{name} {key}: {seconds:.1f} s, out-of-fold {metric} {row[f'{key}_oof']:.4f}", flush=True)
    for key in ("unigrams", "unweighted") + (("ovr",) if task == "single" else ()):
        diff, lo, hi = paired_bootstrap_diff(data.y, preds[key], preds["cross_fit"], metric, alpha=0.32, seed=0)
        row[f"{key}_vs_reference"] = [diff, lo, hi]

    t0 = time.perf_counter()
    suite.peer_tfidf_lr(data, split.test.texts, task)
    row["peer_s"] = time.perf_counter() - t0
    print(f"{name}: fit {row['fit_s']:.1f} s, peer {row['peer_s']:.1f} s", flush=True)
    return row


TABLE_HEAD = ("| dataset | docs × labels | median words | one fit s | cross-fit s | + unigrams s | default s "
              "| peer s | OOF 1–2 | unigrams Δ [68 %] | unweighted Δ [68 %] |\n"
              "|---|---|---|---|---|---|---|---|---|---|---|")


def table_row(r: dict) -> str:
    def d(key):
        v, lo, hi = r[key]
        return f"{v:+.4f} [{lo:+.4f}, {hi:+.4f}]"

    return (f"| {r['dataset']} | {r['documents']:,} × {r['labels']} | {r['median_words']:g} | {r['fit_s']:.1f} "
            f"| {r['cross_fit_s']:.1f} | {r['unigrams_s']:.1f} | {r['default_s']:.1f} | {r['peer_s']:.1f} "
            f"| {r['cross_fit_oof']:.4f} | {d('unigrams_vs_reference')} | {d('unweighted_vs_reference')} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(suite.DEFAULT_DATASETS))
    parser.add_argument("--work", type=Path, default=Path("/tmp/nlpkit-suite") / "splits")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    print(f"machine: {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    for name, split in suite.each_split(args.work, args.datasets):
        rows.append(profile(split, name))
    print(TABLE_HEAD)
    for r in rows:
        print(table_row(r))
    single = [r for r in rows if "ovr_s" in r]
    if single:
        print("\n| dataset | multinomial cross-fit s | one-vs-rest cross-fit s | OOF multinomial | one-vs-rest Δ [68 %] |\n"
              "|---|---|---|---|---|")
        for r in single:
            v, lo, hi = r["ovr_vs_reference"]
            print(f"| {r['dataset']} | {r['cross_fit_s']:.1f} | {r['ovr_s']:.1f} | {r['cross_fit_oof']:.4f} "
                  f"| {v:+.4f} [{lo:+.4f}, {hi:+.4f}] |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
