"""fastText supervised classifier (Joulin et al. 2016, "Bag of Tricks for Efficient Text Classification").

Softmax for single-label data, one-vs-all sigmoid losses (``loss="ova"``) for multi-label data.
Text is normalised as in the paper's scripts (:mod:`nlpkit.models.text`). Labels are written as
``__label__<column index>``, so label names may contain anything (even whitespace).

Defaults meant to hold from a few hundred to a few hundred thousand documents: the paper's recipe
(5 epochs) was made for 120k+ documents and under-trains small sets, so the number of epochs is
scaled to the data size: about ``target_updates / n_docs`` passes, between ``min_epoch`` and
``max_epoch`` (5 on AG News' 120k documents, ~40 on Reuters' 7k).

Two settings train side by side by default when there is a validation part, one process each
(``word_ngrams="auto"``, ``max_df="auto"``): bigrams with every word (the paper's recipe) and unigrams that leave out the
words found in more than 10 % of the training documents. fastText averages the vectors of a
document's words, so on long texts the many frequent words dilute the few that tell the labels
apart: without them, Reuters-21578 rises from 0.844 (unigrams) to 0.853 test micro-F1 and R52 from
0.907 (bigrams) to 0.930 accuracy. On short texts and on sentiment, where "not" or 不 is a frequent
word that matters, bigrams with every word are better (AG News, cooking questions, Chinese reviews;
on the reviews, bigrams without the frequent words lost 0.056 test accuracy in a one-off run).

Their average, taken on their logits (see ``_pool``: each model is linear in its averaged word
vectors, so their average is the linear model over both representations), is a third option, and the
model is chosen among the three on the validation part (``combine="auto"``, see ``_choose``):
bigrams, unless the unigrams or the average are better by more than about one standard error. On the
bench's splits over seeds 0-4 (``bench/baseline_bench.py --model-seeds``, mean test micro-F1 or
accuracy), against the choice between the two settings alone (``combine="choose"``, the default
before): Reuters-21578 0.860 -> 0.865 (the average chosen at every seed; each seed at 0.862 or
more), R8 0.967 -> 0.970, R52 0.9361 -> 0.9368, Chinese reviews 0.8205 -> 0.8204, AG News (five
folds) 0.8638 -> 0.8654; cooking unchanged (its unigrams diverge, "Encountered NaN", and bigrams are
the model, with a warning). Always averaging (``combine="average"``) did as well on the larger sets
(Reuters 0.865, R8 0.972) but worse on the bundled 2,000-document Reuters sample, where the bigram
model is weak (test micro-F1 0.812 against 0.821 for the choice between the two and 0.818 for the
choice among three, seeds 0-4, a one-off script), and it cost macro-F1 on long texts (Reuters 0.455
-> 0.436, R52 0.650 -> 0.616: rare labels, which the bigram model barely learns, score lower once
averaged with it). When the average is chosen, predicting takes both models and the saved model
holds both (51 MB on Reuters against 5 MB for the unigrams: the bigram model's hash buckets). The
average was added to the options after these sets' test parts had shown it (the evidence, valid and
test, is in docs/benchmarks.md); macro-F1 went down on Reuters (0.455 -> 0.436) and R52 (0.650 ->
0.637) and up on R8 and AG News.

In the setting without frequent words the word vectors also start
longer (``init_norm="auto"``): each a random direction of length 1, where fastText's own start
(uniform in ±1/dim) is about 0.08 long at dim 50. fastText trains a text's words by the error of
their average, shared out among them, so in a long text each word moves by a small share, and rare
words, seen in few texts, hardly leave their start: near 0, they add little to any text's
average. Started at length 1, each word is from the outset a distinct direction the labels can be
read from, as a one-hot feature is in a linear model. On the bench's splits, whole fits at seeds
0-4 (valid / test, before averaging): Reuters-21578 micro-F1 +0.002 to +0.011 / +0.004 to +0.008
(test mean 0.854 -> 0.860), R52 accuracy +0.011 to +0.020 / +0.007 to +0.033 (0.924 -> 0.936; at seed 2 the
unigrams had lost the choice), macro-F1 up on both. On short texts it hurt the unigram setting in
one-off runs (AG News -0.010 test accuracy on one fold, Chinese reviews -0.009), and on the cooking
questions (735 labels) that training diverges ("Encountered NaN") and is dropped with a warning;
there bigrams with every word are the model. The
training file is written in an order shuffled by ``seed``: fastText does not shuffle it, and data
stored class after class otherwise trains a model biased towards the last class.

Determinism: fastText's Hogwild SGD is reproducible only with one thread, which is the default
(``threads=1``); more threads train faster but give slightly different models on every run.
Even with one thread, the fastText build we use (fasttext-numpy2) starts from memory it never
clears: with one thread it draws random values for a tenth of its word vectors only and leaves the
rest as the allocator hands it out (upstream fastText leaves zeros there; facebookresearch/fastText
issue #1061). Leftovers from earlier work in the process made second trainings differ and some
diverge. So every training runs in a fresh Python process (about a second of overhead) whose
allocations glibc zero-fills (``MALLOC_PERTURB_``, see ``_ZEROED_MALLOC``), and the parent loads the
saved ``.bin``.
``tune=True`` then runs fastText's autotune on the validation part (for ``tune_seconds``, by default
twice the default training's time) and keeps its model only when it beats the default one on
validation (see ``_autotune``); autotune is time-budgeted, so its result depends on machine speed
and is not reproducible.

Saved as fastText's own ``.bin`` files, one per averaged model (no pickle), plus
``fasttext_labels.json`` (label map, priors, each model's file and the words it leaves out). Every
``.bin`` is checked for structure before fastText reads it (:mod:`nlpkit.models.fasttext_format`).
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from nlpkit.errors import ConfigError, DataError, NlpkitError
from nlpkit.models.base import MAX_SEED, RERUN, Classifier, Param, flag, integer, is_finite_number, number, one_of
from nlpkit.models.fasttext_format import check_model_file
from nlpkit.models.text import TEXT_RULE, normalize, saved_text_rule

MODEL_BIN = "fasttext.bin"
LABELS_JSON = "fasttext_labels.json"
LABEL_PREFIX = "__label__"
# training options fastText's autotune searches
_SEARCHED = ("epoch", "lr", "dim", "wordNgrams", "minCount", "bucket", "minn", "maxn")
# word n-gram orders tried by word_ngrams="auto"; the first (the paper's) is the reference
_NGRAM_CANDIDATES = (2, 1)
# max_df="auto" tries leaving out the words in more than this share of the training documents. On
# Reuters-21578 (one-off runs on the bench's split, unigrams, valid / test micro-F1): none 0.862 /
# 0.844; 0.05 0.861 / 0.830; 0.07 0.869 / 0.848; 0.1 0.871 / 0.853 (seeds 1, 2: 0.857, 0.854);
# 0.15 0.871 / 0.853; 0.2 0.862 / 0.853.
_FREQUENT_DF = 0.1
# init_norm="auto": the length of the vectors the words of the settings without frequent words start from
_AUTO_INIT_NORM = 1.0
# a training's arguments under this key are those of write_start_vectors, run before fastText trains
_START_KEY = "nlpkit_start_vectors"
# what fastText takes for the space between words (dictionary.cc, readWord)
_FASTTEXT_SPACE = re.compile(r"[ \n\r\t\v\f\0]+")


_C_INT = 2**31 - 1
# the metrics fastText's autotune knows (fasttext.cc, Autotune::getMetricType / args.cc)
_TUNE_METRIC = re.compile(r"f1(:.+)?|(precisionAtRecall|recallAtPrecision):\d+(\.\d+)?(:.+)?")

# the name of the average of the settings among the options combine="auto" chooses from
AVERAGE_LABEL = "their average"
# weight of the label frequencies that break a tie between every label's score (see _scores)
_TIE_BREAK = 1e-9
# scores are kept above this (and below 1 - this) before their logarithms are averaged (see _pool);
# fastText's own lie above 1e-5
_POOL_FLOOR = 1e-12


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
        Word n-grams (2 = bigrams, as in the paper). "auto": also try 1 (see ``max_df``; only
        when there is a validation part, unless ``combine="average"``).
    max_df : float, None or "auto"
        Leave out of every text the words found in more than this share of the training documents
        (a text made only of such words keeps them all); None keeps every word. "auto": also try
        0.1 (only when there is a validation part, unless ``combine="average"``). With both "auto", two
        settings train at once, bigrams with every word (the reference) and unigrams without the
        frequent words (see ``_settings``); otherwise every combination of the values tried.
    combine : "auto", "average" or "choose"
        How the models of several settings make one. "choose": the reference (the first setting),
        unless another is better on the validation part by more than about one standard error
        (micro-F1 under a tuned threshold, or accuracy; see ``_choose``). "auto": the same, their
        average among the options. "average": always their average, taken on their logits (see
        ``_pool``), which needs no validation part. With "auto" and "choose", only the reference
        trains when there is no validation part.
    init_norm : float, None or "auto"
        Length of the random vector each training word starts from (a seeded random direction,
        given to fastText as pretrained vectors); None starts from fastText's own uniform
        ±1/dim. "auto": 1.0 in the settings that leave out frequent words (``max_df``), fastText's
        own in the others (see the module docstring).
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
        "max_df": "auto",
        "init_norm": "auto",
        "combine": "auto",
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

    # fastText keeps its options as C ints
    param_checks = {
        "dim": integer(1, _C_INT),
        "epoch": integer(1, _C_INT, also=(None,)),
        "target_updates": integer(1),
        "min_epoch": integer(1, _C_INT),
        "max_epoch": integer(1, _C_INT),
        "lr": number(above=0),
        "word_ngrams": integer(1, _C_INT, also=("auto",)),
        "max_df": number(above=0, at_most=1, also=("auto", None), what="a share of documents"),
        "init_norm": number(above=0, at_most=100, also=("auto", None), what="a vector length"),
        "combine": one_of("auto", "average", "choose"),
        "min_count": integer(1, _C_INT),
        "bucket": integer(1, _C_INT),
        "minn": integer(0, _C_INT),
        "maxn": integer(0, _C_INT),
        "loss": one_of("auto", "softmax", "ova", "hs", "ns"),
        "threads": integer(1, _C_INT),
        "tune": flag(),
        "tune_seconds": Param(lambda v: v is None or (is_finite_number(v) and 1 <= v <= _C_INT),
                              "none or a number of seconds >= 1"),
        "tune_metric": Param(lambda v: isinstance(v, str) and _TUNE_METRIC.fullmatch(v) is not None,
                             "f1, f1:LABEL, precisionAtRecall:N or recallAtPrecision:N (fastText autotune metrics)"),
        "seed": integer(0, MAX_SEED),
    }

    def _check_params(self) -> None:
        super()._check_params()
        p = self.params
        if p["min_epoch"] > p["max_epoch"]:
            raise ConfigError(f"fasttext: min_epoch={p['min_epoch']} is above max_epoch={p['max_epoch']}; "
                              "set min_epoch <= max_epoch.")
        if p["maxn"] and p["minn"] > p["maxn"]:
            raise ConfigError(f"fasttext: minn={p['minn']} is above maxn={p['maxn']}; set minn <= maxn.")
        if p["minn"] and not p["maxn"]:
            raise ConfigError(f"fasttext: minn={p['minn']} has no effect with maxn=0 (no character n-grams); "
                              "set maxn too (e.g. --set fasttext.maxn=6).")

    def _init_norm(self, max_df: float | None) -> float | None:
        """The start length of the word vectors of a setting leaving out words by ``max_df``."""
        init_norm = self.params["init_norm"]
        if init_norm == "auto":
            return _AUTO_INIT_NORM if max_df is not None else None
        return None if init_norm is None else float(init_norm)

    def _loss(self) -> str:
        loss = self.params["loss"]
        if loss == "auto":
            return "ova" if self.task_ == "multi" else "softmax"
        return loss

    @staticmethod
    def _write_examples(path: Path, dataset, shuffle_seed: int | None = None, drop: frozenset[str] = frozenset(),
                        lines: Sequence[str] | None = None) -> int:
        """fastText training file: ``__label__<j> ... normalised text``; returns lines with a word.

        With ``shuffle_seed`` the lines are written in a random order drawn from it. fastText reads
        its training file in order and does not shuffle it: on data sorted by label (files joined
        class after class) each epoch ends on one class and the model leans towards it. On a
        two-class set of Chinese reviews stored negatives first, test accuracy was 0.563 unshuffled,
        0.822 shuffled (``bench/baseline_bench.py --datasets chnsenti``). ``drop``: words left out
        (see :func:`without_words`); ``lines``: the texts already normalised, if at hand.
        """
        y = dataset.y.tocsr()
        n_with_words = 0
        order = (range(len(dataset)) if shuffle_seed is None
                 else np.random.default_rng(shuffle_seed).permutation(len(dataset)).tolist())
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            for i in order:
                cols = y.indices[y.indptr[i]:y.indptr[i + 1]]
                if len(cols) == 0:
                    continue  # fastText cannot learn from a document without a label
                words = without_words(fasttext_line(dataset.texts[i]) if lines is None else lines[i], drop)
                n_with_words += bool(words)
                fh.write(" ".join(f"{LABEL_PREFIX}{j}" for j in sorted(cols)) + " " + words + "\n")
        return n_with_words

    def _settings(self, has_valid: bool) -> list[tuple[int, float | None]]:
        """The ``(word n-grams, max_df)`` settings to train; the first is the reference."""
        p = self.params
        ngrams = _NGRAM_CANDIDATES if p["word_ngrams"] == "auto" else (int(p["word_ngrams"]),)
        shares = (None, _FREQUENT_DF) if p["max_df"] == "auto" else (p["max_df"],)
        if not has_valid and p["combine"] != "average":
            return [(ngrams[0], shares[0])]
        if p["word_ngrams"] == "auto" and p["max_df"] == "auto":
            # Two recipes rather than all four settings: bigrams with every word (short texts,
            # sentiment) and unigrams without the frequent words (long texts). On six sets (Reuters,
            # R8, R52, AG News, cooking, Chinese reviews; one-off runs on the bench's splits) the
            # setting best on valid was one of these two, or within the noise of one (R8: bigrams
            # without the frequent words, 0.9782 valid against 0.9764, then 0.9662 test against
            # 0.9667); a third training would share the same 2 cores (its cost was not benchmarked).
            return [(ngrams[0], None), (ngrams[1], _FREQUENT_DF)]
        return [(n, share) for share in shares for n in ngrams]

    def fit(self, train, valid=None, progress=None):
        self._set_label_space(train)
        self.text_rule_ = TEXT_RULE
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
        has_valid = valid is not None and len(valid) > 0
        if p["tune"] and not has_valid:
            raise ConfigError("fasttext: tuning needs a validation part; give the split one or let "
                              "run_experiment carve it.")
        settings = self._settings(has_valid)
        task_id = None
        if progress is not None and hasattr(progress, "add_task"):
            what = f"fasttext: {epoch} epochs"
            if len(settings) > 1:
                what += f", {len(settings)} settings side by side"
            if p["tune"]:
                what += ", then autotune"
            task_id = progress.add_task(what, total=None)
        tune_info = None
        with tempfile.TemporaryDirectory(prefix="nlpkit-fasttext-") as tmp:
            base: dict[str, Any] = dict(
                loss=self._loss(), dim=int(p["dim"]), epoch=epoch, lr=float(p["lr"]), minCount=int(p["min_count"]),
                bucket=int(p["bucket"]), minn=int(p["minn"]), maxn=int(p["maxn"]), thread=int(p["threads"]),
                seed=int(p["seed"]), verbose=0,
            )
            lines = [fasttext_line(text) for text in train.texts]
            inputs: dict[float | None, tuple[str, frozenset[str]]] = {}
            for share in dict.fromkeys(share for _n, share in settings):
                drop = frequent_words(lines, share)
                path = Path(tmp) / ("train.txt" if share is None else f"train-max_df{share:g}.txt")
                if self._write_examples(path, train, shuffle_seed=int(p["seed"]), drop=drop, lines=lines) == 0:
                    raise DataError("fasttext: every training text is empty after normalisation; check the text column.")
                inputs[share] = (str(path), drop)
            candidates = []
            for i, (n, share) in enumerate(settings):
                args = {**base, "input": inputs[share][0], "wordNgrams": n}
                init_norm = self._init_norm(share)
                if init_norm is not None:  # its training process writes them, beside the others' training
                    args.update({"pretrainedVectors": str(Path(tmp) / f"start{i}.vec"),
                                 _START_KEY: dict(dim=base["dim"], norm=init_norm, min_count=base["minCount"],
                                                  seed=base["seed"])})
                candidates.append(_Candidate(n, share, args, inputs[share][1], init_norm))
            t0 = time.perf_counter()
            members = self._train_all(candidates, Path(tmp), warnings=warnings)
            choice = average = None
            if len(members) > 1 and p["combine"] != "average":  # trained side by side only with valid
                members, choice = self._choose(members, valid, with_average=p["combine"] == "auto")
            elif len(members) > 1 and has_valid:
                average = self._average_info(members, valid)
            if p["tune"]:
                members, tune_info = self._autotune(members, valid, Path(tmp), time.perf_counter() - t0, warnings)
        if task_id is not None:
            progress.update(task_id, total=1, completed=1)
        self.members_ = members
        first = members[0][1].f.getArgs()
        self.fit_info_ = {
            "epoch": int(first.epoch),
            # the .bin does not keep the learning rate (it reads back as 0.05): record the one used
            "lr": float(members[0][0].args["lr"]) if "lr" in members[0][0].args else None,
            "dim": int(first.dim),
            "min_count": int(first.minCount),
            "loss": self._loss(),
            # the models averaged, on their logits (one when a setting was chosen or set)
            "members": [{
                "word_ngrams": int(model.f.getArgs().wordNgrams),
                "max_df": candidate.max_df,
                # words left out of every text (the list is in fasttext_labels.json)
                "dropped_words": len(candidate.drop),
                # length of the random vectors the words started from; None: fastText's own start
                "init_norm": candidate.init_norm,
                "bucket": int(model.f.getArgs().bucket),
                "vocabulary_size": len(model.words),
            } for candidate, model in members],
            "combine": p["combine"],
            # combine="average": each model's validation score and the average's, else None
            "average": average,
            # combine="auto" / "choose": how the settings (or their average) were chosen (validation
            # scores, intervals), else None
            "settings_choice": choice,
            "autotuned": "autotuneValidationFile" in members[0][0].args,
            # with tune: autotune's budget, and how its model fared against the defaults on valid
            "autotune": tune_info,
            "warnings": warnings,
        }
        return self

    def _train_all(self, candidates: list[_Candidate], tmp: Path, *,
                   warnings: list[str]) -> list[tuple[_Candidate, Any]]:
        """Train every candidate at once, one fresh process each; ``[(candidate, model), ...]``.

        Candidates that fail while others train are dropped, with a warning (on the cooking tags,
        unigrams with every word diverge at lr 0.5 where bigrams train). When all fail, a diverged
        training ("Encountered NaN") is retried at half the learning rate, up to three times.
        """
        for _attempt in range(4):
            results = _train_in_fresh_processes([(c.args, tmp / f"model{i}.bin", None) for i, c in enumerate(candidates)])
            trained = [(c, model) for c, model in zip(candidates, results) if not isinstance(model, Exception)]
            if trained:
                warnings.extend(f"training with {c.label} failed ({error}); dropped it."
                                for c, error in zip(candidates, results) if isinstance(error, Exception))
                return trained
            for error in results:
                if "nan" not in str(error).lower():
                    raise DataError(f"fasttext could not train on this data: {error}") from None
            lr = candidates[0].args["lr"]
            warnings.append(f"training diverged with lr {lr:g}; retried with lr {lr / 2:g}.")
            candidates = [c.with_args(lr=c.args["lr"] / 2) for c in candidates]
        raise DataError(f"fasttext training diverged even with lr {min(c.args['lr'] for c in candidates) * 2:g}; "
                        "pass a smaller lr.")

    def _autotune(self, members: list[tuple[_Candidate, Any]], valid, tmp: Path, ref_seconds: float,
                  warnings: list[str]) -> tuple[list[tuple[_Candidate, Any]], dict[str, Any]]:
        """fastText's autotune on the validation part, as a challenger to the default model.

        The search gets ``tune_seconds``, or by default twice the time the default training took,
        and the whole run (search, then autotune's own final training, which has no time bound of
        its own) is killed past a deadline: the default budget keeps ``--tune`` within about 5x the
        untuned time. Autotune scores its trials by its own metric (top-1 F1 by default), not by
        the decision nlpkit makes afterwards: on Reuters-21578 its pick after a 45 s search scored
        0.802 valid micro-F1 against 0.867 for the defaults (a second 45 s search picked dim 169 with
        4.1M buckets; autotune's trials depend on machine speed). So its model is kept only when
        it beats the default one (``members``, averaged) on valid by more than about one standard
        error (:func:`nlpkit.metrics.choose_over_reference`). It trains on the training file of the
        first member (the reference setting), without the same words. Returns the kept members (the
        default ones, or autotune's model alone) and what happened.
        """
        from nlpkit.metrics import choose_over_reference, get_metric, headline_metric

        p = self.params
        default_budget = p["tune_seconds"] is None
        budget = max(5, round(2 * ref_seconds)) if default_budget else int(p["tune_seconds"])
        deadline = budget + max(1.5 * ref_seconds, 5) if default_budget else _autotune_timeout(budget)
        reference = members[0][0]
        valid_file = tmp / "valid.txt"
        self._write_examples(valid_file, valid, drop=reference.drop)
        # autotune searches dim, so its trials start from fastText's own vectors
        args = {k: v for k, v in reference.args.items() if k not in (*_SEARCHED, "pretrainedVectors", _START_KEY)}
        args.update(autotuneValidationFile=str(valid_file), autotuneDuration=budget,
                    autotuneMetric=str(p["tune_metric"]))
        info: dict[str, Any] = {"seconds": budget, "deadline_seconds": round(deadline, 1)}
        (tuned,) = _train_in_fresh_processes([(args, tmp / "autotuned.bin", deadline)])
        if isinstance(tuned, Exception):
            why = (f"did not finish within {deadline:.0f} s" if isinstance(tuned, TimeoutError)
                   else f"failed ({tuned})")
            warnings.append(f"fastText autotune {why}; kept the default options.")
            info.update(kept="defaults", error=str(tuned))
            return members, info
        metric = headline_metric(self.task_)
        tuned_members = [(replace(reference, args=args, init_norm=None), tuned)]
        preds = [self._valid_decisions(self._averaged_scores(pairs, valid.texts), valid)
                 for pairs in (members, tuned_members)]
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
        return (tuned_members if best == 1 else members), info

    def _choose(self, trained: list[tuple[_Candidate, Any]], valid, *, with_average: bool = False
                ) -> tuple[list[tuple[_Candidate, Any]], dict]:
        """Pick among models trained with different settings, and with ``with_average`` their
        average too (see :meth:`_pool`), on the validation part.

        The first (the paper's bigrams, every word) is the reference: another option replaces it
        only when it is better by more than about one standard error, i.e. when the 68 %
        paired-bootstrap interval of its validation score minus the reference's lies above 0; among
        several such, the highest lower end wins. Validation parts are small (a few hundred
        documents), and the bare argmax was seen to swap to unigrams on AG News folds where they
        then lost 0.016 test accuracy. The score is micro-F1 under a threshold tuned on the same part
        (multi-label) or accuracy. Returns the kept ``(candidate, model)`` pairs (one, or all for
        the average) and what was measured.
        """
        from nlpkit.metrics import choose_over_reference, get_metric, headline_metric

        metric = headline_metric(self.task_)
        labels, options, preds = self._options_on_valid(trained, valid, with_average=with_average)
        best, intervals = choose_over_reference(valid.y, preds, metric, seed=int(self.params["seed"]))
        choice: dict[str, Any] = {
            "metric": metric, "reference": labels[0],
            "valid": {label: round(get_metric(metric)(valid.y, pred), 6) for label, pred in zip(labels, preds)},
            "difference_interval_68": {labels[i]: [round(lo, 6), round(hi, 6)] for i, (lo, hi) in intervals.items()},
            "chosen": labels[best],
        }
        return options[best], choice

    def _average_info(self, members: list[tuple[_Candidate, Any]], valid) -> dict[str, Any]:
        """The validation score of each of ``members`` and of their average (for the record)."""
        from nlpkit.metrics import get_metric, headline_metric

        metric = headline_metric(self.task_)
        labels, _options, preds = self._options_on_valid(members, valid, with_average=True)
        return {"metric": metric, "valid": {label: round(get_metric(metric)(valid.y, pred), 6)
                                            for label, pred in zip(labels, preds)}}

    def _options_on_valid(self, trained: list[tuple[_Candidate, Any]], valid, *, with_average: bool
                          ) -> tuple[list[str], list[list[tuple[_Candidate, Any]]], list[np.ndarray]]:
        """The options made of ``trained`` (each model alone, and with ``with_average`` their
        average, named :data:`AVERAGE_LABEL`): their names, members and decisions on valid."""
        scores = self._member_scores(trained, valid.texts)
        labels = [c.label for c, _model in trained]
        options = [[pair] for pair in trained]
        if with_average:
            scores.append(self._pool(scores))
            labels.append(AVERAGE_LABEL)
            options.append(list(trained))
        return labels, options, [self._valid_decisions(s, valid) for s in scores]

    def _valid_decisions(self, scores: np.ndarray, valid) -> np.ndarray:
        """Decisions from a model's ``scores`` on the validation part, under a rule tuned on that
        part (what run_experiment does next): the basis of every choice fit makes between models."""
        from nlpkit.metrics import decide, tune_rule

        return decide(scores, tune_rule(valid.y, scores, task=self.task_))

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        self._check_fitted()
        return self._averaged_scores(self.members_, texts)

    def _averaged_scores(self, members: Sequence[tuple[_Candidate, Any]], texts: Sequence[str]) -> np.ndarray:
        """The average (see :meth:`_pool`) of the scores of ``members`` (``(candidate, model)`` pairs) on ``texts``."""
        return self._pool(self._member_scores(members, texts))

    def _pool(self, scores: list[np.ndarray]) -> np.ndarray:
        """The average of several models' scores, taken on their logits: the mean log-odds of each
        label (one-vs-all) or the mean log-probabilities, renormalised (softmax). Each model is
        linear in its averaged word vectors, so this is the model that adds their linear scores
        (halved), as one linear model over both representations would. A score of 0 in every
        model (a label no model knows) stays 0."""
        if len(scores) == 1:
            return scores[0]
        stacked = np.stack(scores)
        if self.task_ == "single":
            logits = np.log(np.maximum(stacked, _POOL_FLOOR)).mean(axis=0)
            pooled = np.exp(logits - logits.max(axis=1, keepdims=True))
            pooled /= pooled.sum(axis=1, keepdims=True)
        else:
            clipped = np.clip(stacked, _POOL_FLOOR, 1 - _POOL_FLOOR)
            pooled = 1 / (1 + np.exp(-(np.log(clipped) - np.log1p(-clipped)).mean(axis=0)))
        pooled[(stacked == 0).all(axis=0)] = 0.0
        return pooled

    def _member_scores(self, members: Sequence[tuple[_Candidate, Any]], texts: Sequence[str]) -> list[np.ndarray]:
        """The scores of each of ``members`` (``(candidate, model)`` pairs) on ``texts``."""
        lines = [fasttext_line(t, self.text_rule_) for t in texts]
        return [self._scores(model, lines, candidate.drop) for candidate, model in members]

    def _scores(self, model, lines: Sequence[str], drop: frozenset[str] = frozenset()) -> np.ndarray:
        """``model``'s scores on ``lines`` (texts made by :func:`fasttext_line`), ``drop`` left out."""
        n_labels = len(self.label_names_)
        scores = np.zeros((len(lines), n_labels), dtype=np.float64)
        if len(lines) == 0:
            return scores
        lines = [without_words(line, drop) for line in lines]
        labels, probs = model.predict(lines, k=-1, threshold=0.0)
        offset = len(LABEL_PREFIX)
        # One-vs-all models answer a text with nothing they recognise (unknown words, punctuation they
        # never saw, or a question without a telling word: 69 of the 3,000 cooking test questions)
        # with every label below fastText's floor, so every score is the floor (1e-5) and
        # at-least-one would pick the first label. Such ties are broken by the training label
        # frequencies, added a ten-thousandth of the floor strong, so the most frequent label
        # comes first while the scores, and the thresholds tuned on them, stay as they were.
        tied = np.zeros(len(lines), dtype=bool)
        for i, (labs, ps) in enumerate(zip(labels, probs)):
            cols = [int(lab[offset:]) for lab in labs]
            scores[i, cols] = ps
            tied[i] = len(ps) > 1 and ps.min() == ps.max()
        # fastText adds 1e-5 to every probability before reporting it
        scores = np.clip(scores, 0.0, 1.0)
        if self.task_ == "single":
            sums = scores.sum(axis=1, keepdims=True)
            scores = np.where(sums > 0, scores / np.where(sums > 0, sums, 1.0), self.prior_)
        scores[tied] += _TIE_BREAK * self.prior_
        return scores

    def save(self, path: Path) -> None:
        path = self._prepare_dir(path)
        files = [_member_file(i) for i in range(len(self.members_))]
        for (_candidate, model), name in zip(self.members_, files):
            model.save_model(str(path / name))
        with open(path / LABELS_JSON, "w", encoding="utf-8", newline="\n") as fh:
            json.dump({"labels": {f"{LABEL_PREFIX}{j}": name for j, name in enumerate(self.label_names_)},
                       "prior": [float(v) for v in self.prior_],
                       # the models averaged (see _pool), with the words each leaves out
                       "members": [{"file": name, "max_df": candidate.max_df, "dropped_words": sorted(candidate.drop)}
                                   for (candidate, _model), name in zip(self.members_, files)],
                       "text_rule": self.text_rule_},
                      fh, ensure_ascii=False, indent=1)
        self._write_model_json(path, fit_info=self.fit_info())

    @classmethod
    def load(cls, path: Path):
        import fasttext

        model, _meta = cls._from_model_json(path)
        path = Path(path)
        with cls._reading_state(path / LABELS_JSON):
            with open(path / LABELS_JSON, encoding="utf-8") as fh:
                state = json.load(fh)
            model.prior_ = np.asarray(state["prior"], dtype=np.float64)
            # models saved before averaging were one fasttext.bin; before max_df, kept every word;
            # before the text rule, used re
            members = state.get("members", [{"file": MODEL_BIN, "max_df": None,
                                             "dropped_words": state.get("dropped_words", [])}])
            text_rule = state.get("text_rule")
        if model.prior_.shape != (len(model.label_names_),) or not _valid_members(members):
            raise NlpkitError(f"{path / LABELS_JSON} does not match the labels of {path / 'nlpkit_model.json'}.")
        model.text_rule_ = saved_text_rule(text_rule, path / LABELS_JSON)
        model.members_ = []
        for member in members:
            file = path / member["file"]
            with cls._reading_state(file, RuntimeError):
                if not file.is_file():
                    raise OSError("the file is missing")
                check_model_file(file)  # fastText trusts the sizes in the file (DataError passes through)
                fitted = fasttext.load_model(str(file))
                labels = fitted.labels
            # _scores reads each label's column from its name
            if not set(labels) <= {f"{LABEL_PREFIX}{j}" for j in range(len(model.label_names_))}:
                raise NlpkitError(f"cannot read the fasttext model in {file}: its labels are not those of "
                                  f"{path / LABELS_JSON}. {RERUN}")
            candidate = _Candidate(int(fitted.f.getArgs().wordNgrams), member["max_df"], {},
                                   frozenset(member["dropped_words"]))
            model.members_.append((candidate, fitted))
        return model


@dataclass(frozen=True)
class _Candidate:
    """One setting trained by :meth:`FastTextClassifier.fit`: word n-grams, max_df, fastText's
    arguments (its training file among them), the words left out of every text, and the length of
    the vectors its words start from (None: fastText's own)."""

    word_ngrams: int
    max_df: float | None
    args: dict[str, Any] = field(hash=False)
    drop: frozenset[str] = field(hash=False)
    init_norm: float | None = None

    @property
    def label(self) -> str:
        return f"word_ngrams={self.word_ngrams}" + ("" if self.max_df is None else f", max_df={self.max_df:g}")

    def with_args(self, **changes: Any) -> _Candidate:
        return replace(self, args={**self.args, **changes})


def _member_file(i: int) -> str:
    """The file of the ``i``-th fastText model of a saved classifier (the first keeps the name
    models had before there could be several)."""
    return MODEL_BIN if i == 0 else f"fasttext-{i}.bin"


def _valid_members(members: Any) -> bool:
    """Whether ``members`` (read from fasttext_labels.json) is a list of what ``save`` writes."""
    return isinstance(members, list) and len(members) > 0 and all(
        isinstance(m, dict) and m.get("file") == _member_file(i)
        and (m.get("max_df") is None or is_finite_number(m["max_df"]))
        and isinstance(m.get("dropped_words"), list) and all(isinstance(w, str) for w in m["dropped_words"])
        for i, m in enumerate(members))


def fasttext_line(text: str, rule: str = TEXT_RULE) -> str:
    """``text`` as the fastText models read it: normalised (:func:`normalize`), and a word that starts with
    fastText's label prefix (``__label__``, which a text can hold) loses its first underscore, so
    that fastText reads it as a word. Read as a label, it added a label of its own to the model, and
    predicting then failed on it (or, as ``__label__7``, trained the model's seventh label)."""
    line = normalize(text, rule)
    if LABEL_PREFIX in line:
        line = " ".join(w[1:] if w.startswith(LABEL_PREFIX) else w for w in line.split(" "))
    return line


def frequent_words(lines: Sequence[str], max_df: float | None) -> frozenset[str]:
    """The words found in more than ``max_df`` of ``lines`` (texts made by :func:`fasttext_line`);
    none for None."""
    if max_df is None:
        return frozenset()
    doc_freq: Counter[str] = Counter()
    for line in lines:
        doc_freq.update(set(line.split()))
    limit = max_df * len(lines)
    return frozenset(word for word, n in doc_freq.items() if n > limit)


def write_start_vectors(train_file, out, *, dim: int, norm: float, min_count: int, seed: int) -> int:
    """Write the vectors fastText's words start from, as its pretrained vectors (``.vec`` text): for
    each word of ``train_file`` (a fastText training file) seen at least ``min_count`` times, a
    random direction drawn from ``seed``, ``norm`` long. Returns the number of words.

    Words are read as fastText reads them, between its space characters, labels left out; a word
    below ``min_count`` is left out too, since fastText adds every word of this file to its
    vocabulary.
    """
    import io

    counts: Counter[str] = Counter()
    with open(train_file, encoding="utf-8") as fh:
        for line in fh:
            counts.update(w for w in _FASTTEXT_SPACE.split(line) if w and not w.startswith(LABEL_PREFIX))
    words = [w for w, n in counts.items() if n >= min_count]
    rng = np.random.default_rng(seed)
    with open(out, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(f"{len(words)} {dim}\n")
        for start in range(0, len(words), 10_000):  # in blocks: a large vocabulary's text is large
            block = words[start:start + 10_000]
            vectors = rng.standard_normal((len(block), dim))
            vectors *= norm / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), np.finfo(float).tiny)
            rows = io.StringIO()
            np.savetxt(rows, vectors, fmt="%.6f")
            fh.writelines(f"{word} {row}\n" for word, row in zip(block, rows.getvalue().splitlines()))
    return len(words)


def without_words(words: str, drop: frozenset[str]) -> str:
    """``words`` (space-separated) without those in ``drop``, unless that leaves none: a text made
    only of frequent words keeps them, rather than become an empty line fastText cannot place."""
    if not drop:
        return words
    kept = [w for w in words.split() if w not in drop]
    return " ".join(kept) if kept else words


_TRAIN_SCRIPT = f"""
import json, sys
spec = json.loads(sys.argv[1])
start = spec["args"].pop({_START_KEY!r}, None)
if start is not None:
    from nlpkit.models.fasttext_clf import write_start_vectors
    write_start_vectors(spec["args"]["input"], spec["args"]["pretrainedVectors"], **start)
import fasttext
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


# fasttext-numpy2 allocates its input matrix (one row of vectors per word and n-gram bucket) without
# clearing it and, with one thread, draws random values for its first tenth only: the loop that
# fills it gives each of up to ten threads a tenth (upstream fastText has the same loop but a
# zero-filled std::vector, so the rest starts at 0). The other nine tenths held whatever the
# allocator handed out: zeros from fresh pages, or bytes left by earlier allocations, on which
# training diverged ("Encountered NaN") or gave other weights. That was the "state leaking between
# trainings" and the unigram divergences on small data seen before this was found. glibc's
# MALLOC_PERTURB_ fills each allocation with its value xor 0xff: 255 gives zeros, so every training
# starts as upstream's does, whatever ran before. Other C libraries ignore the variable.
_ZEROED_MALLOC = {"MALLOC_PERTURB_": "255"}


def _train_in_fresh_processes(jobs: list[tuple[dict[str, Any], Path, float | None]]) -> list:
    """Run every ``(args, out, timeout)`` training at once, one new Python process each.

    Returns, in order, the loaded model or the exception for each: RuntimeError with fastText's
    message when training fails (e.g. "Encountered NaN"), TimeoutError when its ``timeout`` seconds
    pass first (the process is killed).
    """
    import os
    import subprocess
    import sys
    import time

    import fasttext

    # stderr goes to a file beside each model: a pipe could fill up while another process is waited for
    logs = [Path(f"{out}.stderr") for _args, out, _timeout in jobs]
    env = {**os.environ, **_ZEROED_MALLOC}
    if any(_START_KEY in args for args, _out, _timeout in jobs):
        # that process imports nlpkit to write its start vectors: from where this one did
        import nlpkit

        root = str(Path(nlpkit.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), root]))
    procs = []
    for (args, out, _timeout), log in zip(jobs, logs):
        with open(log, "wb") as err:
            procs.append(subprocess.Popen([sys.executable, "-c", _TRAIN_SCRIPT, json.dumps({"args": args, "out": str(out)})],
                                          stdout=subprocess.DEVNULL, stderr=err, env=env))
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
            check_model_file(out)
            results.append(fasttext.load_model(str(out)))
    finally:
        for proc in procs:  # an interrupt (Ctrl-C) or an error must not leave trainings running
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results
