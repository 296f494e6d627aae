"""Development suite (issue #22): every shared dataset, nlpkit's baselines with defaults and the plain
peer recipes side by side, valid and test, and a protocol check for a default against a challenger.

Datasets (``../shared/data``; a missing folder is skipped) and their fixed splits, built once under
``--work`` (default ``/tmp/nlpkit-suite``) and reused from there:

* ``reuters``: Reuters-21578 ModApte, official train -> test; valid carved from train.
* ``cooking``: cooking tags, official train; its official "valid" file is the test part; valid carved
  from train.
* ``sst2``: GLUE SST-2, official train -> GLUE dev as test; valid carved from train.
* ``trec6``, ``trec50``: TREC question types, official train -> test; valid carved from train.
* ``agnews``: AG News (the 7,600-row published test set only), ``bbc``: BBC News (``all.jsonl``),
  ``hoc``: Hallmarks of Cancer (``all.jsonl``, multi-label, 272 abstracts with no label, kept):
  ``nlpkit split`` on the one file (``split_files``: iterative stratification, test 0.2, valid 0.1).
* ``r8``, ``r52``, ``chnsenti`` on request (``--datasets``), as ``bench/baseline_bench.py`` builds them.

"valid carved from train" is :func:`nlpkit.experiment.carve_valid` (the iterative stratification of
``nlpkit split``), fraction 0.1. Every split uses ``--seed`` (default 0).

Models: ``majority``, ``tfidf-lr``, ``fasttext``, ``word2vec`` (nlpkit, defaults, ``--set`` passed on),
and the plain peers, timed as a user runs them on this machine (wall clock, every core):

* ``peer-tfidf-lr``: scikit-learn ``TfidfVectorizer(ngram_range=(1, 2))`` + ``LogisticRegression(C=10,
  max_iter=1000)``, one per label for multi-label data (joblib, ``n_jobs=-1``);
  argmax, or every label scored 0.5 or more.
* ``peer-fasttext``: the fastText tutorial's command, as ``bench/baseline_bench.py`` runs it.
* ``peer-word2vec``: gensim ``Word2Vec`` with gensim's defaults (CBOW, 100 dimensions, window 5,
  min_count 5, 5 epochs; ``workers`` = every core, seed 0) on ``gensim.utils.simple_preprocess``
  tokens, the mean of a text's word vectors, then ``LogisticRegression(max_iter=1000)``
  (one-vs-rest for multi-label data); decisions as above.

A peer's test column is fitted on train + valid (it makes no decision on valid) and timed; its valid
column is a second fit on train alone, scored on valid, not timed. An nlpkit model's valid column is
its run's recorded valid metric (out-of-fold for tfidf-lr, which is cross-fitted); its seconds are the
run's fit + predict. "Δ vs peer" is nlpkit.metrics.paired_bootstrap_diff of the test predictions
(headline metric: accuracy for single-label data, micro-F1 for multi-label; 95 % interval).

``--repeats N`` runs tfidf-lr and peer-tfidf-lr N times, alternating, and reports median seconds.

``--compare MODEL.KEY=VALUE`` (repeatable) is the protocol check of docs/benchmarks.md: each
dataset's MODEL with defaults and with each setting; valid predictions are the saved model's on the
valid part under its recorded rule (models that score valid out-of-fold cannot be paired and are
refused); per dataset the valid difference with its 68 % paired-bootstrap interval (about one
standard error), the test difference for the record, and whether each side meets the protocol.

Usage: python bench/suite.py [--datasets a,b] [--models ...] [--set MODEL.KEY=VALUE] [--repeats N]
       [--json FILE] [--work DIR] [--compare MODEL.KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import baseline_bench as bb  # noqa: E402  (the splits' readers, the nlpkit runner, the fastText peer)

DATA = bb.DATA
NLPKIT_MODELS = ("majority", "tfidf-lr", "fasttext", "word2vec")
PEERS = {"tfidf-lr": "peer-tfidf-lr", "fasttext": "peer-fasttext", "word2vec": "peer-word2vec"}
VALID_FRACTION = 0.1
TEST_SIZE = 0.2
# (folder, train file, test file) with official parts; (folder, file) split by nlpkit; smallest first
OFFICIAL = {
    "trec6": ("trec6", "train.jsonl", "test.jsonl"),
    "trec50": ("trec50", "train.jsonl", "test.jsonl"),
    "reuters": ("reuters21578", "train.jsonl", "test.jsonl"),
    "cooking": ("cooking_stackexchange", "train.jsonl", "valid.jsonl"),
    "sst2": ("sst2", "train.jsonl", "test.jsonl"),
}
ONE_FILE = {
    "hoc": ("hallmarks_of_cancer", "all.jsonl"),
    "bbc": ("bbc_news", "all.jsonl"),
    "agnews": ("ag_news_test", "ag_news_test.jsonl"),
}
FROM_BASELINE_BENCH = ("r8", "r52", "chnsenti")
DEFAULT_DATASETS = ("hoc", "bbc", "trec6", "trec50", "agnews", "reuters", "cooking", "sst2")
# R8 and R52 share Reuters' texts: one vote between them in the protocol
PROTOCOL_GROUP = {"r8": "reuters", "r52": "reuters"}


# --- splits -------------------------------------------------------------------------------------

def recipe(name: str, seed: int) -> str:
    """How ``name``'s split is made, in words (printed and written with every row)."""
    if name in OFFICIAL:
        folder, train, test = OFFICIAL[name]
        return f"{folder}/{train} -> {folder}/{test}; valid carve_valid({VALID_FRACTION}, seed {seed})"
    if name in ONE_FILE:
        folder, file = ONE_FILE[name]
        return f"split_files({folder}/{file}, test {TEST_SIZE}, valid {VALID_FRACTION}, seed {seed})"
    return f"bench/baseline_bench.py build_splits({name}, seed {seed})"


def get_split(root: Path, name: str, seed: int):
    """The split of ``name`` under ``root``, built on first use (None when its data is absent)."""
    from nlpkit.data import load_split, write_split
    from nlpkit.experiment import carve_valid
    from nlpkit.split import split_files

    path = root / name
    if (path / "split.json").is_file():
        return load_split(path)
    if name in OFFICIAL:
        folder, train_file, test_file = OFFICIAL[name]
        if not (DATA / folder).is_dir():
            return None
        train, test = bb._same_space(bb._read(DATA / folder / train_file), bb._read(DATA / folder / test_file))
        fit, valid = carve_valid(train, fraction=VALID_FRACTION, seed=seed)
        return write_split(path, {"train": fit, "valid": valid, "test": test},
                           {"source": recipe(name, seed), "seed": seed})
    if name in ONE_FILE:
        folder, file = ONE_FILE[name]
        if not (DATA / folder).is_dir():
            return None
        split, _result, _manifest = split_files(path, input=DATA / folder / file, test_size=TEST_SIZE,
                                                valid_size=VALID_FRACTION, seed=seed)
        return split
    if name in FROM_BASELINE_BENCH:
        built = bb.build_splits(root, [name], seed=seed)
        return built[name][0] if built.get(name) else None
    raise SystemExit(f"unknown dataset {name!r}; choose from {', '.join((*OFFICIAL, *ONE_FILE, *FROM_BASELINE_BENCH))}")


def each_split(root: Path, names: str, seed: int = 0):
    """``(name, split)`` for each comma-separated name whose data is present (others are reported)."""
    for name in names.split(","):
        split = get_split(root, name, seed)
        if split is None:
            print(f"{name}: data not found, skipped")
            continue
        yield name, split


def describe_split(split) -> str:
    sizes = ", ".join(f"{part} {len(ds)}" for part, ds in split.parts.items())
    empty = {part: int((np.asarray(ds.y.sum(axis=1)).ravel() == 0).sum()) for part, ds in split.parts.items()}
    extra = (" (documents without a label: " + ", ".join(f"{p} {n}" for p, n in empty.items()) + ")"
             if any(empty.values()) else "")
    return f"{split.task}-label, {len(split.label_names)} labels; {sizes}{extra}"


# --- predictions and metrics --------------------------------------------------------------------

def headline(task: str) -> str:
    from nlpkit.metrics import headline_metric

    return headline_metric(task)


def decide(scores: np.ndarray, task: str) -> np.ndarray:
    """A peer's decisions: argmax for single-label data, every label scored 0.5 or more otherwise."""
    from nlpkit.metrics import Argmax, FixedThreshold

    rule = FixedThreshold(0.5, at_least_one=False) if task == "multi" else Argmax()
    return np.asarray(rule.predict(scores), dtype=np.uint8)


def score_of(y, pred: np.ndarray, metric: str) -> float:
    from nlpkit.metrics import get_metric

    return float(get_metric(metric)(y, pred))


def paired(y, pred_a, pred_b, metric: str, alpha: float) -> tuple[float, float, float]:
    from nlpkit.metrics import paired_bootstrap_diff

    return paired_bootstrap_diff(y, pred_a, pred_b, metric, alpha=alpha, seed=0)


# --- peers --------------------------------------------------------------------------------------

def _fit_linear(X, train, Xt, task: str, **params) -> np.ndarray:
    """Scores of a linear model fitted on ``X`` (labels of ``train``) for ``Xt``, one column per label:
    one multinomial LogisticRegression, or one per label (one-vs-rest) over every core."""
    import warnings

    from joblib import Parallel, delayed
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    # LogisticRegression's own n_jobs does nothing since scikit-learn 1.8 (it warns). One-vs-rest is a
    # loop over labels, not OneVsRestClassifier: on the cooking split (736 label columns, one never in
    # train) its predict_proba put nothing above 0.5 for labels a lone fit predicts 68 times.
    Y = train.y.toarray().astype(np.int64)
    scores = np.zeros((Xt.shape[0], Y.shape[1]))

    def one(y):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return LogisticRegression(max_iter=1000, **params).fit(X, y).predict_proba(Xt)

    if task == "multi":
        count = Y.sum(axis=0)
        fitted = [j for j in range(Y.shape[1]) if 0 < count[j] < len(Y)]
        for j, proba in zip(fitted, Parallel(n_jobs=-1)(delayed(one)(Y[:, j]) for j in fitted)):
            scores[:, j] = proba[:, 1]
        scores[:, count == len(Y)] = 1.0
    else:
        y = Y.argmax(axis=1)
        scores[:, np.unique(y)] = one(y)
    return scores


def peer_tfidf_lr(train, texts: list[str], task: str) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(ngram_range=(1, 2))
    X = vec.fit_transform(train.texts)
    return _fit_linear(X, train, vec.transform(texts), task, C=10)


def peer_word2vec(train, texts: list[str], task: str) -> np.ndarray:
    from gensim.models import Word2Vec
    from gensim.utils import simple_preprocess

    tokens = [simple_preprocess(t) for t in train.texts]
    w2v = Word2Vec(sentences=tokens, workers=os.cpu_count() or 1, seed=0)  # gensim's defaults otherwise

    def mean_vectors(docs: list[list[str]]) -> np.ndarray:
        out = np.zeros((len(docs), w2v.vector_size), dtype=np.float32)
        for i, words in enumerate(docs):
            known = [w for w in words if w in w2v.wv.key_to_index]
            if known:
                out[i] = w2v.wv[known].mean(axis=0)
        return out

    return _fit_linear(mean_vectors(tokens), train, mean_vectors([simple_preprocess(t) for t in texts]), task)


def peer_fasttext(train, texts: list[str], task: str) -> np.ndarray:
    """bench/baseline_bench.py's tutorial recipe, given a view of its split: train -> ``texts``."""
    import scipy.sparse as sp

    from nlpkit.data import Dataset

    test = Dataset(ids=[str(i) for i in range(len(texts))], texts=list(texts),
                   y=sp.csr_matrix((len(texts), train.n_labels), dtype=np.uint8),
                   label_names=list(train.label_names), task=task)
    scores, _seconds = bb.peer_fasttext(SimpleNamespace(train=train, valid=train.subset([]), test=test, task=task))
    return scores


PEER_RECIPES = {"peer-tfidf-lr": peer_tfidf_lr, "peer-fasttext": peer_fasttext, "peer-word2vec": peer_word2vec}


def run_peer(split, name: str, *, with_valid: bool = True) -> tuple[dict, np.ndarray]:
    """One peer: valid column (fit on train), then the timed fit on train + valid scored on test."""
    from nlpkit.experiment import join_parts

    fn, task, metric = PEER_RECIPES[name], split.task, headline(split.task)
    valid_score = None
    if with_valid:
        valid_score = score_of(split.valid.y, decide(fn(split.train, split.valid.texts, task), task), metric)
    load0, t0 = os.getloadavg()[0], time.perf_counter()
    scores = fn(join_parts(split.train, split.valid), split.test.texts, task)
    seconds = time.perf_counter() - t0
    pred = decide(scores, task)
    row = {"model": name, "task": task, "metric": metric, "valid": valid_score,
           "test": score_of(split.test.y, pred, metric), "macro_f1": score_of(split.test.y, pred, "macro_f1"),
           "seconds": seconds, "load_before": load0,
           "rule": "fixed 0.5" if task == "multi" else "argmax"}
    return row, pred


# --- nlpkit -------------------------------------------------------------------------------------

def run_model(split, model: str, runs_root: Path, seed: int, settings: list[str]) -> tuple[dict, np.ndarray, object]:
    """One nlpkit baseline through bench/baseline_bench.py's runner; ``(row, test predictions, run)``."""
    from nlpkit.runs import load_run

    out = bb.run_nlpkit(split, model, runs_root, seed, settings)
    run = load_run(out["run"])
    metric = headline(split.task)
    metrics = run.metrics()
    ids, _scores, pred = run.predictions()
    if ids != list(split.test.ids):
        raise RuntimeError(f"{model}: the run's test ids are not the split's")
    row = {"model": model, "task": split.task, "metric": metric,
           "valid": metrics["valid"]["metrics"][metric], "test": metrics["test"]["metrics"][metric],
           "macro_f1": metrics["test"]["metrics"]["macro_f1"], "seconds": out["fit_predict_seconds"],
           "experiment_wall_seconds": out["experiment_wall_seconds"], "load_before": out["load_before"],
           "rule": out["rule"], "cross_fit": out["cross_fit"],
           "valid_out_of_fold": bool(out["cross_fit"]), "run": out["run"],
           "fit_info": out.get("fit_info")}
    return row, pred, run


def valid_predictions(run, split) -> np.ndarray:
    """The saved model's decisions on the valid part under its recorded rule; checked against the
    run's own valid metric, so that a pairing on valid is the run's valid part."""
    from nlpkit.experiment import recorded_rule
    from nlpkit.models import load_model

    if (run.info.get("config") or {}).get("cross_fit"):
        raise SystemExit(f"{run.model} scores valid out-of-fold: its valid predictions are not saved; "
                         f"--compare takes models fitted on train")
    scores = load_model(run.model_dir).predict_proba(split.valid.texts)
    pred = np.asarray(recorded_rule(run, len(split.label_names)).predict(scores), dtype=np.uint8)
    metric = headline(split.task)
    recorded = run.metrics()["valid"]["metrics"][metric]
    if abs(score_of(split.valid.y, pred, metric) - recorded) > 1e-9:
        raise RuntimeError(f"{run.model}: reloaded valid {metric} differs from the run's {recorded}")
    return pred


# --- output -------------------------------------------------------------------------------------

def _f(value, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def table_row(row: dict) -> str:
    delta = ""
    if row.get("delta") is not None:
        d, lo, hi = row["delta"]
        delta = f"{d:+.4f} [{lo:+.4f}, {hi:+.4f}]"
    seconds = _f(row["seconds"], 1)
    if row.get("seconds_all") and len(row["seconds_all"]) > 1:
        seconds += f" (median of {len(row['seconds_all'])})"
    valid = _f(row["valid"]) + (" (oof)" if row.get("valid_out_of_fold") else "")
    metric = "accuracy" if row["metric"] == "accuracy" else "micro-F1"
    return (f"| {row['dataset']} | {metric} | {row['model']} | {valid} | {_f(row['test'])} | "
            f"{_f(row['macro_f1'])} | {seconds} | {delta} |")


TABLE_HEAD = ("| dataset | metric | model | valid | test | macro-F1 (test) | seconds | Δ vs peer, test [95 % CI] |\n"
              "|---|---|---|---|---|---|---|---|")


# --- the suite ----------------------------------------------------------------------------------

def run_suite(split, name: str, models: list[str], args) -> list[dict]:
    """Every model on one split; tfidf-lr and its peer alternate ``args.repeats`` times."""
    runs_root = args.work / "runs"
    rows: dict[str, dict] = {}
    preds: dict[str, np.ndarray] = {}
    repeated = [m for m in ("tfidf-lr", "peer-tfidf-lr") if m in models]
    order = [m for m in models if m not in repeated]
    for r in range(max(1, args.repeats) if repeated else 0):
        for model in repeated:
            if model in PEER_RECIPES:
                row, pred = run_peer(split, model, with_valid=r == 0)
            else:
                row, pred, _run = run_model(split, model, runs_root, args.seed, args.settings)
            if r == 0:
                rows[model], preds[model] = row, pred
                row["seconds_all"] = [row["seconds"]]
            else:
                rows[model]["seconds_all"].append(row["seconds"])
            progress(name, model, row)
    for model in order:
        if model in PEER_RECIPES:
            row, pred = run_peer(split, model)
        else:
            row, pred, _run = run_model(split, model, runs_root, args.seed, args.settings)
        row["seconds_all"] = [row["seconds"]]
        rows[model], preds[model] = row, pred
        progress(name, model, row)
    out = []
    for model in models:
        row = rows[model]
        row["seconds"] = statistics.median(row["seconds_all"])
        peer = PEERS.get(model)
        if peer in preds:
            row["delta"] = paired(split.test.y, preds[model], preds[peer], row["metric"], alpha=0.05)
            row["seconds_vs_peer"] = row["seconds"] / statistics.median(rows[peer]["seconds_all"])
        row.update(dataset=name, split=recipe(name, args.seed))
        out.append(row)
    return out


def progress(name: str, model: str, row: dict) -> None:
    print(f"{name} {model}: valid {_f(row['valid'])} test {_f(row['test'])} {row['seconds']:.1f} s "
          f"(load {row['load_before']:.1f})", file=sys.stderr, flush=True)


def run_compare(split, name: str, model: str, args) -> list[dict]:
    """MODEL with defaults and with each --compare setting on one split: valid and test differences."""
    runs_root = args.work / "runs"
    base, base_test, base_run = run_model(split, model, runs_root, args.seed, args.settings)
    base_valid = valid_predictions(base_run, split)
    progress(name, f"{model} (defaults)", base)
    out = []
    for setting in args.compare:
        row, test, run = run_model(split, model, runs_root, args.seed, args.settings + [setting])
        progress(name, f"{model} {setting}", row)
        valid = valid_predictions(run, split)
        metric = row["metric"]
        out.append({"dataset": name, "model": model, "setting": setting, "metric": metric,
                    "valid_default": base["valid"], "valid_variant": row["valid"],
                    "valid_diff": paired(split.valid.y, valid, base_valid, metric, alpha=0.32),
                    "test_default": base["test"], "test_variant": row["test"],
                    "test_diff": paired(split.test.y, test, base_test, metric, alpha=0.05),
                    "macro_default": base["macro_f1"], "macro_variant": row["macro_f1"],
                    "seconds_default": base["seconds"], "seconds_variant": row["seconds"],
                    "choice_default": _choice(base), "choice_variant": _choice(row)})
    return out


def _choice(row: dict) -> str:
    """What a fastText run ended with (its settings' choice), for the record."""
    info = row.get("fit_info") or {}
    members = info.get("members") or []
    return " + ".join(f"{m.get('word_ngrams')}-grams" + ("" if m.get("max_df") is None else f" max_df {m['max_df']:g}")
                      for m in members)


def protocol(rows: list[dict]) -> list[str]:
    """The protocol (docs/benchmarks.md) applied to --compare rows, in both directions: a side wins
    when it is better on valid on most sets (R8 / R52 count with Reuters) and never worse by more
    than one standard error (68 % paired interval entirely below 0) on any."""
    lines = []
    for setting in dict.fromkeys(r["setting"] for r in rows):
        mine = [r for r in rows if r["setting"] == setting]
        groups: dict[str, list[dict]] = {}
        for r in mine:
            groups.setdefault(PROTOCOL_GROUP.get(r["dataset"], r["dataset"]), []).append(r)
        for side, sign in (("variant", 1), ("default", -1)):
            better = sum(np.mean([sign * r["valid_diff"][0] for r in g]) > 0 for g in groups.values())
            worse = [k for k, g in groups.items() if any(
                (sign * r["valid_diff"][2] if sign > 0 else -r["valid_diff"][1]) < 0 for r in g)]
            meets = better > len(groups) / 2 and not worse
            lines.append(f"{setting}: {side} better on valid on {better} of {len(groups)} sets; worse by more "
                         f"than one SE on {', '.join(worse) or 'none'} -> {'meets' if meets else 'does not meet'} "
                         f"the protocol")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DEFAULT_DATASETS))
    parser.add_argument("--models", default=",".join(NLPKIT_MODELS + tuple(PEERS.values())))
    parser.add_argument("--seed", type=int, default=0, help="Seed of the splits and of the models.")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="MODEL.KEY=VALUE",
                        help="A model parameter, as `nlpkit baseline --set` takes it (repeatable).")
    parser.add_argument("--repeats", type=int, default=1, help="Runs of tfidf-lr and its peer, alternating.")
    parser.add_argument("--compare", action="append", default=[], metavar="MODEL.KEY=VALUE",
                        help="Protocol check: MODEL with defaults against this setting (repeatable).")
    parser.add_argument("--work", type=Path, default=Path("/tmp/nlpkit-suite"), help="Splits and runs folder.")
    parser.add_argument("--json", type=Path, default=None, help="Also write every row to this JSON file.")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(f"skipped: {DATA} not found (the suite needs the shared datasets).")
        return 0
    datasets = [d for d in args.datasets.split(",") if d]
    models = [m for m in args.models.split(",") if m]
    compared = sorted({s.partition(".")[0] for s in args.compare})
    if len(compared) > 1:
        raise SystemExit(f"--compare takes one model's settings at a time; got {', '.join(compared)}")
    t0 = time.perf_counter()
    results: list[dict] = []
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; splits and runs under {args.work}")
    for name in datasets:
        split = get_split(args.work / "splits", name, args.seed)
        if split is None:
            print(f"{name}: skipped (no data under {DATA})")
            continue
        print(f"{name}: {recipe(name, args.seed)}; {describe_split(split)}", flush=True)
        results += run_compare(split, name, compared[0], args) if compared else run_suite(split, name, models, args)
    print()
    if compared:
        print("| dataset | setting | valid default / variant | Δ valid [68 % CI] | test default / variant | Δ test [95 % CI] |"
              " macro-F1 default / variant | chose default / variant |")
        print("|---|---|---|---|---|---|---|---|")
        for r in results:
            d, lo, hi = r["valid_diff"]
            td, tlo, thi = r["test_diff"]
            print(f"| {r['dataset']} | {r['setting']} | {_f(r['valid_default'])} / {_f(r['valid_variant'])} | "
                  f"{d:+.4f} [{lo:+.4f}, {hi:+.4f}] | {_f(r['test_default'])} / {_f(r['test_variant'])} | "
                  f"{td:+.4f} [{tlo:+.4f}, {thi:+.4f}] | {_f(r['macro_default'])} / {_f(r['macro_variant'])} | "
                  f"{r['choice_default']} / {r['choice_variant']} |")
        print()
        for line in protocol(results):
            print(line)
    else:
        print(TABLE_HEAD)
        for row in results:
            print(table_row(row))
        print()
        for row in results:
            if row.get("seconds_vs_peer") is not None:
                print(f"{row['dataset']} {row['model']}: {row['seconds_vs_peer']:.2f}x the peer's seconds")
    print(f"\nsuite wall time {time.perf_counter() - t0:.0f} s")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
