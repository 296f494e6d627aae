"""fastText supervised classifier (Joulin et al. 2016, "Bag of Tricks for Efficient Text Classification").

Softmax for single-label data, one-vs-all sigmoid losses (``loss="ova"``) for multi-label data, on
text normalised as in the paper's scripts (:mod:`nlpkit.text`); labels are written as
``__label__<column index>``, so label names may contain anything. The number of epochs is scaled to
the data size (the paper's 5 under-train small sets; see :func:`epochs_for`).

With a validation part, two settings train side by side by default: bigrams with every word (the
paper's recipe, the reference) and unigrams without the words found in more than 10 % of the
training documents, whose vectors start longer (``init_norm``): on long texts frequent words dilute
the few that tell labels apart, on short texts and sentiment they matter. The model is the
reference, the unigrams, or their average taken on their logits (``_pool``), chosen on the
validation part with a one-standard-error rule (``_choose``). ``tune=True`` then lets fastText's
autotune challenge it on the validation part, under a time budget (not reproducible). The evidence
for these defaults is in docs/benchmarks.md ("`nlpkit baseline`", "Evidence behind the defaults").

Determinism: one thread (``threads=1``), a training file shuffled by ``seed`` (fastText reads it in
order), and every training in a fresh process (:mod:`nlpkit.models.fasttext_process`).

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
from nlpkit.models.base import MAX_SEED, RERUN, WITHIN_SE, Classifier, Param, flag, integer, is_finite_number, number, one_of
from nlpkit.models import fasttext_process
from nlpkit.models.fasttext_format import LABEL_PREFIX, check_model_file
from nlpkit.models.fasttext_process import START_KEY
from nlpkit.text import TEXT_RULE, normalize, saved_text_rule

MODEL_BIN = "fasttext.bin"
LABELS_JSON = "fasttext_labels.json"
# training options fastText's autotune searches
_SEARCHED = ("epoch", "lr", "dim", "wordNgrams", "minCount", "bucket", "minn", "maxn")
# word n-gram orders tried by word_ngrams="auto"; the first (the paper's) is the reference
_NGRAM_CANDIDATES = (2, 1)
# max_df="auto" tries leaving out the words in more than this share of the training documents (the
# best share on Reuters valid among 0.05-0.2: docs/benchmarks.md, "Evidence behind the defaults")
_FREQUENT_DF = 0.1
# init_norm="auto": the length of the vectors the words of the settings without frequent words start from
_AUTO_INIT_NORM = 1.0


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
        # 1.0 (the fastText tutorial's) diverged on cooking tags; 0.5 is the safe default (a divergence
        # is still retried at half the rate; docs/benchmarks.md, "Evidence behind the defaults")
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

    @classmethod
    def baseline_params(cls, options) -> dict[str, Any]:
        params = super().baseline_params(options)
        if "tune_seconds" in params:  # autotune's budget is whole seconds
            params["tune_seconds"] = int(round(params["tune_seconds"]))
        return params

    @classmethod
    def describe_choices(cls, fit_info: dict[str, Any]) -> list[tuple[str, str]]:
        """Its setting, or the average of its settings, and autotune's model or the defaults, with
        the validation scores it chose by."""
        out: list[tuple[str, str]] = []
        average = fit_info.get("average")
        if average:
            valid = average["valid"]
            *members, mean = valid  # each model's name, then the average's
            out.append((f"the average of {' and '.join(members)}",
                        f"valid {average['metric']} {valid[mean]:.3f}; each alone "
                        + ", ".join(f"{valid[name]:.3f}" for name in members)))
        settings = fit_info.get("settings_choice")
        if settings:
            chosen = settings["chosen"]
            valid = settings["valid"]
            others = ", ".join(f"{v:.3f} for {k}" for k, v in valid.items() if k != chosen)
            evidence = f"valid {settings['metric']} {valid[chosen]:.3f} against {others}"
            if chosen == settings.get("reference") and max(valid.values()) > valid[chosen]:
                evidence += WITHIN_SE
            out.append((chosen, evidence))
        tuned = fit_info.get("autotune")
        if tuned and "valid" in tuned:
            first, second = ("autotune", "defaults") if tuned["kept"] == "autotune" else ("defaults", "autotune")
            what = {"autotune": "autotune's model", "defaults": "the default options"}
            evidence = f"valid {tuned['metric']} {tuned['valid'][first]:.3f} against {tuned['valid'][second]:.3f}"
            if first == "defaults" and tuned["valid"][second] > tuned["valid"][first]:
                evidence += WITHIN_SE
            out.append((f"{what[first]} over {what[second]}", evidence))
        return out

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

        With ``shuffle_seed`` the lines are written in a random order drawn from it: fastText reads
        its training file in order, so on data sorted by label each epoch ends on one class and the
        model leans towards it (docs/benchmarks.md, "Evidence behind the defaults"). ``drop``: words
        left out (see :func:`without_words`); ``lines``: the texts already normalised, if at hand.
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
            # sentiment) and unigrams without the frequent words (long texts); on six sets the best
            # on valid was one of these or within its noise (docs/benchmarks.md).
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
                                 START_KEY: dict(dim=base["dim"], norm=init_norm, min_count=base["minCount"],
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
            results = fasttext_process.train_in_fresh_processes([(c.args, tmp / f"model{i}.bin", None) for i, c in enumerate(candidates)])
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
        the decision nlpkit makes afterwards, and its pick may score below the defaults
        (docs/benchmarks.md). So its model is kept only when it beats the default one (``members``,
        averaged) on valid by more than about one standard error
        (:func:`nlpkit.metrics.choose_over_reference`). It trains on the training file of the
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
        args = {k: v for k, v in reference.args.items() if k not in (*_SEARCHED, "pretrainedVectors", START_KEY)}
        args.update(autotuneValidationFile=str(valid_file), autotuneDuration=budget,
                    autotuneMetric=str(p["tune_metric"]))
        info: dict[str, Any] = {"seconds": budget, "deadline_seconds": round(deadline, 1)}
        (tuned,) = fasttext_process.train_in_fresh_processes([(args, tmp / "autotuned.bin", deadline)])
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
        several such, the highest lower end wins: validation parts are small, and the bare argmax
        swapped to settings that then lost on test (docs/benchmarks.md). The score is micro-F1 under a threshold tuned on the same part
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


def without_words(words: str, drop: frozenset[str]) -> str:
    """``words`` (space-separated) without those in ``drop``, unless that leaves none: a text made
    only of frequent words keeps them, rather than become an empty line fastText cannot place."""
    if not drop:
        return words
    kept = [w for w in words.split() if w not in drop]
    return " ".join(kept) if kept else words


def _autotune_timeout(tune_seconds) -> float:
    """Wall-clock bound for an autotune run: its search budget, then room for the final training."""
    return 60.0 + 5.0 * float(tune_seconds)
