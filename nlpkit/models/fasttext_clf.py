"""fastText supervised classifier (Joulin et al. 2016, "Bag of Tricks for Efficient Text Classification").

Softmax for single-label data, one-vs-all sigmoid losses (``loss="ova"``) for multi-label data.
Text is normalised as in the paper's scripts (:mod:`nlpkit.models.text`). Labels are written as
``__label__<column index>``, so label names may contain anything (even whitespace).

Defaults meant to hold from a few hundred to a few hundred thousand documents: the paper's recipe
(5 epochs) was made for 120k+ documents and under-trains small sets, so the number of epochs is
scaled to the data size: about ``target_updates / n_docs`` passes, between ``min_epoch`` and
``max_epoch`` (5 on AG News' 120k documents, ~40 on Reuters' 7k). Word n-grams are chosen on the
validation part by default (``word_ngrams="auto"``): bigrams (the paper's recipe) and unigrams are
trained side by side, one process each, and unigrams replace bigrams only when clearly better on
validation (see ``_choose_ngrams``). Bigrams win on short texts (cooking questions, AG News); on
long ones (Reuters articles) unigrams do, by 0.009 validation and 0.010 test micro-F1. The
training file is written in an order shuffled by ``seed``: fastText does not shuffle it, and
data stored class after class otherwise trains a model biased towards the last class.

Determinism: fastText's Hogwild SGD is reproducible only with one thread, which is the default
(``threads=1``); more threads train faster but give slightly different models on every run.
Even with one thread, the fastText build we use (fasttext-numpy2) gives different models for the
second and later trainings in one process (state leaks between trainings; on tiny data some even
diverge), while the first training of a fresh process is reproducible. So every training runs
in a fresh Python process (about a second of overhead) and the parent loads the saved ``.bin``.
``tune=True`` then runs fastText's autotune on the validation part (for ``tune_seconds``, by default
twice the default training's time) and keeps its model only when it beats the default one on
validation (see ``_autotune``); autotune is time-budgeted, so its result depends on machine speed
and is not reproducible.

Saved as fastText's own ``.bin`` (no pickle) plus ``fasttext_labels.json`` (label map, priors).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from nlpkit.errors import ConfigError, DataError, NlpkitError
from nlpkit.models.base import Classifier
from nlpkit.models.text import normalize

MODEL_BIN = "fasttext.bin"
LABELS_JSON = "fasttext_labels.json"
LABEL_PREFIX = "__label__"
# training options fastText's autotune searches
_SEARCHED = ("epoch", "lr", "dim", "wordNgrams", "minCount", "bucket", "minn", "maxn")
# word n-gram orders tried by word_ngrams="auto"; the first (the paper's) is the reference
_NGRAM_CANDIDATES = (2, 1)


def epochs_for(n_docs: int, target_updates: int, min_epoch: int, max_epoch: int) -> int:
    """Passes over the data so that about ``target_updates`` documents are seen in total."""
    if n_docs <= 0:
        return min_epoch
    return int(min(max_epoch, max(min_epoch, round(target_updates / n_docs))))


class FastTextClassifier(Classifier):
    """fastText supervised training behind the Classifier contract.

    Parameters (keyword only)
    -------------------------
    dim : int
        Embedding size.
    epoch : int or None
        Passes over the data; None = scaled to the data size (see module docstring).
    lr : float
        Learning rate (linearly decayed to 0 by fastText).
    word_ngrams : int or "auto"
        Word n-grams (2 = bigrams, as in the paper). "auto": with a validation part, train 2 and 1
        at once and keep unigrams only when they beat bigrams on the validation part by more than
        about one standard error (micro-F1 under a tuned threshold, or accuracy); without one, 2.
    min_count : int
        Minimum word count.
    bucket : int
        Hash buckets for n-grams (size of the model: bucket x dim floats).
    loss : "auto", "softmax", "ova", "hs", "ns"
        "auto" = softmax for single-label, ova for multi-label.
    threads : int
        1 = reproducible (see module docstring).
    tune, tune_seconds, tune_metric
        fastText autotune on the validation part, its time budget (None: twice the default training's
        time), and its metric ("f1" by default); its model replaces the default one only when
        clearly better on validation.
    seed : int
        fastText's random seed.
    """

    family = "fasttext"
    param_defaults = {
        "dim": 50,
        "epoch": None,
        "target_updates": 300_000,
        "min_epoch": 5,
        "max_epoch": 50,
        # On a Reuters dev part carved from train, lr 1.0 (the fastText tutorial's cooking recipe) scored
        # micro-F1 0.839 vs 0.816 at 0.5, but diverged ("Encountered NaN") on cooking tags; 0.5 is the
        # safe default (a divergence is still retried at half the rate).
        "lr": 0.5,
        "word_ngrams": "auto",
        "min_count": 1,
        "bucket": 200_000,
        "minn": 0,
        "maxn": 0,
        "loss": "auto",
        "threads": 1,
        "tune": False,
        # None: twice the time the default training took (see _autotune)
        "tune_seconds": None,
        "tune_metric": "f1",
        "seed": 0,
    }

    def __init__(self, **params: Any):
        super().__init__(**params)
        p = self.params
        if p["loss"] not in ("auto", "softmax", "ova", "hs", "ns"):
            raise ConfigError(f"fasttext: loss must be auto, softmax, ova, hs or ns; got {p['loss']!r}.")
        if p["word_ngrams"] != "auto" and not (isinstance(p["word_ngrams"], int) and p["word_ngrams"] >= 1):
            raise ConfigError(f"fasttext: word_ngrams must be 'auto' or an integer >= 1; got {p['word_ngrams']!r}.")
        for key in ("dim", "min_count", "bucket", "threads", "min_epoch", "max_epoch"):
            if int(p[key]) < 1:
                raise ConfigError(f"fasttext: {key} must be >= 1; got {p[key]!r}.")
        if p["epoch"] is not None and int(p["epoch"]) < 1:
            raise ConfigError(f"fasttext: epoch must be >= 1 (or None for automatic); got {p['epoch']!r}.")
        if not float(p["lr"]) > 0:
            raise ConfigError(f"fasttext: lr must be > 0; got {p['lr']!r}.")
        if p["tune_seconds"] is not None and float(p["tune_seconds"]) <= 0:
            raise ConfigError(f"fasttext: tune_seconds must be > 0; got {p['tune_seconds']!r}.")

    def _loss(self) -> str:
        loss = self.params["loss"]
        if loss == "auto":
            return "ova" if self.task_ == "multi" else "softmax"
        return loss

    @staticmethod
    def _write_examples(path: Path, dataset, shuffle_seed: int | None = None) -> int:
        """fastText training file: ``__label__<j> ... normalised text``; returns lines with a word.

        With ``shuffle_seed`` the lines are written in a random order drawn from it. fastText reads
        its training file in order and does not shuffle it: on data sorted by label (files joined
        class after class) each epoch ends on one class and the model leans towards it. On a
        two-class set of Chinese reviews stored negatives first, test accuracy was 0.563 unshuffled,
        0.822 shuffled (``bench/baseline_bench.py --datasets chnsenti``).
        """
        y = dataset.y.tocsr()
        n_with_words = 0
        order = (range(len(dataset)) if shuffle_seed is None
                 else np.random.default_rng(shuffle_seed).permutation(len(dataset)).tolist())
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            for i in order:
                text = dataset.texts[i]
                cols = y.indices[y.indptr[i]:y.indptr[i + 1]]
                if len(cols) == 0:
                    continue  # fastText cannot learn from a document without a label
                words = normalize(text)
                n_with_words += bool(words)
                fh.write(" ".join(f"{LABEL_PREFIX}{j}" for j in sorted(cols)) + " " + words + "\n")
        return n_with_words

    def fit(self, train, valid=None, progress=None):
        self._set_label_space(train)
        p = self.params
        counts = np.asarray(train.y.sum(axis=0), dtype=np.float64).ravel()
        if counts.sum() == 0:
            raise DataError("fasttext: no training document has a label; check the label column (--label-col).")
        self.prior_ = counts / counts.sum() if self.task_ == "single" else counts / max(len(train), 1)
        warnings: list[str] = []
        if self.task_ == "single" and (counts > 0).sum() == 1:
            warnings.append(
                f"every training document has the label {self.label_names_[int(np.argmax(counts))]!r}: "
                f"the model always predicts it."
            )
        epoch = int(p["epoch"]) if p["epoch"] is not None else epochs_for(
            len(train), int(p["target_updates"]), int(p["min_epoch"]), int(p["max_epoch"]))
        auto_ngrams = p["word_ngrams"] == "auto"
        has_valid = valid is not None and len(valid) > 0
        if p["tune"] and not has_valid:
            raise ConfigError("fasttext: tuning needs a validation part; give the split one or let "
                              "run_experiment carve it.")
        choose_ngrams = auto_ngrams and has_valid
        task_id = None
        if progress is not None and hasattr(progress, "add_task"):
            what = f"fasttext: {epoch} epochs"
            if choose_ngrams:
                what += ", word bigrams and unigrams side by side"
            if p["tune"]:
                what += ", then autotune"
            task_id = progress.add_task(what, total=None)
        tune_info = None
        with tempfile.TemporaryDirectory(prefix="nlpkit-fasttext-") as tmp:
            train_file = Path(tmp) / "train.txt"
            if self._write_examples(train_file, train, shuffle_seed=int(p["seed"])) == 0:
                raise DataError("fasttext: every training text is empty after normalisation; check the text column.")
            args: dict[str, Any] = dict(
                input=str(train_file), loss=self._loss(), dim=int(p["dim"]), epoch=epoch, lr=float(p["lr"]),
                wordNgrams=2 if auto_ngrams else int(p["word_ngrams"]), minCount=int(p["min_count"]),
                bucket=int(p["bucket"]), minn=int(p["minn"]), maxn=int(p["maxn"]), thread=int(p["threads"]),
                seed=int(p["seed"]), verbose=0,
            )
            candidates = [args] if not choose_ngrams else [{**args, "wordNgrams": n} for n in _NGRAM_CANDIDATES]
            t0 = time.perf_counter()
            trained = self._train_all(candidates, Path(tmp), warnings=warnings)
            if len(trained) > 1:
                (model, args), ngram_choice = self._choose_ngrams(trained, valid)
            else:
                ((model, args),), ngram_choice = trained, None
            if p["tune"]:
                (model, args), tune_info = self._autotune(model, args, valid, Path(tmp), time.perf_counter() - t0,
                                                          warnings)
        if task_id is not None:
            progress.update(task_id, total=1, completed=1)
        self.model_ = model
        chosen = model.f.getArgs()
        self.fit_info_ = {
            "epoch": int(chosen.epoch),
            # the .bin does not keep the learning rate (it reads back as 0.05): record the one used
            "lr": float(args["lr"]) if "lr" in args else None,
            "dim": int(chosen.dim),
            "word_ngrams": int(chosen.wordNgrams),
            # how word_ngrams="auto" chose (validation scores, intervals), else None
            "word_ngrams_choice": ngram_choice,
            "min_count": int(chosen.minCount),
            "bucket": int(chosen.bucket),
            "loss": self._loss(),
            "autotuned": "autotuneValidationFile" in args,
            # with tune: autotune's budget, and how its model fared against the defaults on valid
            "autotune": tune_info,
            "vocabulary_size": len(model.words),
            "warnings": warnings,
        }
        return self

    def _train_all(self, candidates: list[dict[str, Any]], tmp: Path, *,
                   warnings: list[str]) -> list[tuple[Any, dict[str, Any]]]:
        """Train every argument set at once, one fresh process each; ``[(model, args used), ...]``.

        Candidates that fail while others train are dropped, with a warning (fastText diverges on
        some small data sets with unigrams whatever the learning rate). When all fail, a diverged
        training ("Encountered NaN") is retried at half the learning rate, up to three times.
        """
        jobs = [dict(args) for args in candidates]
        for _attempt in range(4):
            results = _train_in_fresh_processes([(args, tmp / f"model{i}.bin", None) for i, args in enumerate(jobs)])
            trained = [(model, args) for model, args in zip(results, jobs) if not isinstance(model, Exception)]
            if trained:
                warnings.extend(f"training with word n-grams {args['wordNgrams']} failed ({error}); dropped it."
                                for error, args in zip(results, jobs) if isinstance(error, Exception))
                return trained
            for error in results:
                if "nan" not in str(error).lower():
                    raise DataError(f"fasttext could not train on this data: {error}") from None
            warnings.append(f"training diverged with lr {jobs[0]['lr']:g}; retried with lr {jobs[0]['lr'] / 2:g}.")
            jobs = [{**args, "lr": args["lr"] / 2} for args in jobs]
        raise DataError(f"fasttext training diverged even with lr {min(a['lr'] for a in jobs) * 2:g}; "
                        "pass a smaller lr.")

    def _autotune(self, reference, ref_args: dict[str, Any], valid, tmp: Path, ref_seconds: float,
                  warnings: list[str]) -> tuple[tuple[Any, dict[str, Any]], dict[str, Any]]:
        """fastText's autotune on the validation part, as a challenger to the default model.

        The search gets ``tune_seconds``, or by default twice the time the default training took,
        and the whole run (search, then autotune's own final training, which has no time bound of
        its own) is killed past a deadline: the default budget keeps ``--tune`` within about 5x the
        untuned time. Autotune scores its trials by its own metric (top-1 F1 by default), not by
        the decision nlpkit makes afterwards: on Reuters-21578 its pick after a 45 s search scored
        0.802 valid micro-F1 against 0.867 for the defaults (a second 45 s search picked dim 169 with
        4.1M buckets; autotune's trials depend on machine speed). So its model is kept only when
        it beats the default one on valid by more than about one standard error
        (:func:`nlpkit.metrics.choose_over_reference`). Returns the kept ``(model, args)`` and what
        happened.
        """
        from nlpkit.metrics import choose_over_reference, get_metric, headline_metric

        p = self.params
        default_budget = p["tune_seconds"] is None
        budget = max(5, round(2 * ref_seconds)) if default_budget else int(p["tune_seconds"])
        deadline = budget + max(1.5 * ref_seconds, 5) if default_budget else _autotune_timeout(budget)
        valid_file = tmp / "valid.txt"
        self._write_examples(valid_file, valid)
        args = {k: v for k, v in ref_args.items() if k not in _SEARCHED}
        args.update(autotuneValidationFile=str(valid_file), autotuneDuration=budget,
                    autotuneMetric=str(p["tune_metric"]))
        info: dict[str, Any] = {"seconds": budget, "deadline_seconds": round(deadline, 1)}
        (tuned,) = _train_in_fresh_processes([(args, tmp / "autotuned.bin", deadline)])
        if isinstance(tuned, Exception):
            why = (f"did not finish within {deadline:.0f} s" if isinstance(tuned, TimeoutError)
                   else f"failed ({tuned})")
            warnings.append(f"fastText autotune {why}; kept the default options.")
            info.update(kept="defaults", error=str(tuned))
            return (reference, ref_args), info
        metric = headline_metric(self.task_)
        preds = [self._valid_decisions(model, valid) for model in (reference, tuned)]
        best, intervals = choose_over_reference(valid.y, preds, metric, seed=int(p["seed"]))
        chosen = tuned.f.getArgs()
        info.update({
            "metric": metric,
            "valid": {"defaults": round(get_metric(metric)(valid.y, preds[0]), 6),
                      "autotune": round(get_metric(metric)(valid.y, preds[1]), 6)},
            "difference_interval_68": [round(v, 6) for v in intervals[1]],
            "autotune_choice": {"epoch": int(chosen.epoch), "dim": int(chosen.dim), "word_ngrams": int(chosen.wordNgrams),
                                "min_count": int(chosen.minCount), "bucket": int(chosen.bucket),
                                "minn": int(chosen.minn), "maxn": int(chosen.maxn)},
            "kept": "autotune" if best == 1 else "defaults",
        })
        return ((tuned, args) if best == 1 else (reference, ref_args)), info

    def _choose_ngrams(self, trained: list[tuple[Any, dict[str, Any]]], valid) -> tuple[tuple[Any, dict], dict]:
        """Pick among models trained with different word n-gram orders, on the validation part.

        The first (the paper's bigrams) is the reference: another replaces it only when it is better
        by more than about one standard error, i.e. when the 68 % paired-bootstrap interval of its
        validation score minus the reference's lies above 0. Validation parts are small (a few hundred
        documents), and the bare argmax was seen to swap to unigrams on AG News folds where they then
        lost 0.016 test accuracy. The score is micro-F1 under a threshold tuned on the same part
        (multi-label) or accuracy. Returns the kept ``(model, args)`` and what was measured.
        """
        from nlpkit.metrics import choose_over_reference, get_metric, headline_metric

        metric = headline_metric(self.task_)
        preds = [self._valid_decisions(model, valid) for model, _args in trained]
        orders = [int(args["wordNgrams"]) for _model, args in trained]
        best, intervals = choose_over_reference(valid.y, preds, metric, seed=int(self.params["seed"]))
        choice: dict[str, Any] = {
            "metric": metric, "reference": orders[0],
            "valid": {str(n): round(get_metric(metric)(valid.y, pred), 6) for n, pred in zip(orders, preds)},
            "difference_interval_68": {str(orders[i]): [round(lo, 6), round(hi, 6)] for i, (lo, hi) in intervals.items()},
        }
        choice["chosen"] = orders[best]
        return trained[best], choice

    def _valid_decisions(self, model, valid) -> np.ndarray:
        """``model``'s decisions on the validation part, under a rule tuned on that part (what
        run_experiment does next): the basis of every choice fit makes between models."""
        from nlpkit.metrics import decide, tune_rule

        scores = self._scores(model, valid.texts)
        return decide(scores, tune_rule(valid.y, scores, task=self.task_))

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        self._check_fitted()
        return self._scores(self.model_, texts)

    def _scores(self, model, texts: Sequence[str]) -> np.ndarray:
        n_labels = len(self.label_names_)
        scores = np.zeros((len(texts), n_labels), dtype=np.float64)
        if len(texts) == 0:
            return scores
        lines = [normalize(t) for t in texts]
        labels, probs = model.predict(lines, k=-1, threshold=0.0)
        offset = len(LABEL_PREFIX)
        for i, (labs, ps) in enumerate(zip(labels, probs)):
            cols = [int(lab[offset:]) for lab in labs]
            scores[i, cols] = ps
        # fastText adds 1e-5 to every probability before reporting it
        scores = np.clip(scores, 0.0, 1.0)
        if self.task_ == "single":
            sums = scores.sum(axis=1, keepdims=True)
            scores = np.where(sums > 0, scores / np.where(sums > 0, sums, 1.0), self.prior_)
        return scores

    def save(self, path: Path) -> None:
        path = self._prepare_dir(path)
        self.model_.save_model(str(path / MODEL_BIN))
        with open(path / LABELS_JSON, "w", encoding="utf-8", newline="\n") as fh:
            json.dump({"labels": {f"{LABEL_PREFIX}{j}": name for j, name in enumerate(self.label_names_)},
                       "prior": [float(v) for v in self.prior_]}, fh, ensure_ascii=False, indent=1)
        self._write_model_json(path, fit_info=self.fit_info())

    @classmethod
    def load(cls, path: Path):
        import fasttext

        model, _meta = cls._from_model_json(path)
        path = Path(path)
        with cls._reading_state(path, RuntimeError):
            with open(path / LABELS_JSON, encoding="utf-8") as fh:
                state = json.load(fh)
            if not (path / MODEL_BIN).is_file():
                raise OSError(f"{MODEL_BIN} is missing")
            model.model_ = fasttext.load_model(str(path / MODEL_BIN))
            model.prior_ = np.asarray(state["prior"], dtype=np.float64)
        if model.prior_.shape != (len(model.label_names_),):
            raise NlpkitError(f"{path / LABELS_JSON} does not match the labels of {path / 'nlpkit_model.json'}.")
        return model


_TRAIN_SCRIPT = """
import json, sys
import fasttext
spec = json.loads(sys.argv[1])
try:
    model = fasttext.train_supervised(**spec["args"])
except (RuntimeError, ValueError) as exc:
    sys.stderr.write("NLPKIT-ERROR: " + " ".join(str(exc).split()) + "\\n")
    sys.exit(3)
model.save_model(spec["out"])
"""


def _autotune_timeout(tune_seconds) -> float:
    """Wall-clock bound for an autotune run: its search budget, then room for the final training."""
    return 60.0 + 5.0 * float(tune_seconds)


def _train_in_fresh_process(args: dict[str, Any], out: Path, timeout: float | None = None):
    """One training of :func:`_train_in_fresh_processes`: the loaded model, or its exception raised."""
    (result,) = _train_in_fresh_processes([(args, out, timeout)])
    if isinstance(result, Exception):
        raise result
    return result


def _train_in_fresh_processes(jobs: list[tuple[dict[str, Any], Path, float | None]]) -> list:
    """Run every ``(args, out, timeout)`` training at once, one new Python process each.

    Returns, in order, the loaded model or the exception for each: RuntimeError with fastText's
    message when training fails (e.g. "Encountered NaN"), TimeoutError when its ``timeout`` seconds
    pass first (the process is killed).
    """
    import subprocess
    import sys
    import time

    import fasttext

    # stderr goes to a file beside each model: a pipe could fill up while another process is waited for
    logs = [Path(f"{out}.stderr") for _args, out, _timeout in jobs]
    procs = []
    for (args, out, _timeout), log in zip(jobs, logs):
        with open(log, "wb") as err:
            procs.append(subprocess.Popen([sys.executable, "-c", _TRAIN_SCRIPT, json.dumps({"args": args, "out": str(out)})],
                                          stdout=subprocess.DEVNULL, stderr=err))
    start = time.monotonic()
    results: list = []
    try:
        for proc, (_args, out, timeout), log in zip(procs, jobs, logs):
            try:
                proc.wait(timeout=None if timeout is None else max(0.0, timeout - (time.monotonic() - start)))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                results.append(TimeoutError(f"fastText training did not finish within {timeout:g} s"))
                continue
            stderr = log.read_text(encoding="utf-8", errors="replace")
            if proc.returncode != 0 or not out.is_file():
                lines = [ln for ln in stderr.splitlines() if ln.startswith("NLPKIT-ERROR: ")]
                detail = lines[-1][len("NLPKIT-ERROR: "):] if lines else (stderr.strip().splitlines() or ["no output"])[-1]
                results.append(RuntimeError(detail))
                continue
            results.append(fasttext.load_model(str(out)))
    finally:
        for proc in procs:  # an interrupt (Ctrl-C) or an error must not leave trainings running
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results
