"""evaluate() against scikit-learn and hand-worked cases; decision rules and tune_rule."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn import metrics as skm

from nlpkit.errors import ConfigError, NlpkitError
from nlpkit.metrics import (
    Argmax,
    ChooseRule,
    DecisionRule,
    FixedThreshold,
    GlobalThreshold,
    PerLabelThreshold,
    TopK,
    decide,
    evaluate,
    ranking,
    rules,
    tune_rule,
)
from nlpkit.metrics.rules import check_strategy, saved_rule


def _multi_case(seed: int, n: int, n_labels: int, density: float = 0.15, decimals: int | None = 2):
    """Random multi-label truth with a dead label (no positives) and documents without labels;
    scores correlated with truth, rounded so that ties occur."""
    rng = np.random.default_rng(seed)
    y = rng.random((n, n_labels)) < density
    y[:, 0] = False  # a label without positives
    y[: max(1, n // 10)] = False  # documents without labels
    scores = np.clip(0.35 * y + 0.75 * rng.random((n, n_labels)), 0, 1)
    if decimals is not None:
        scores = np.round(scores, decimals)
    return y, scores


def _single_case(seed: int, n: int, n_labels: int):
    rng = np.random.default_rng(seed)
    true = rng.integers(0, n_labels - 1, size=n)  # the last class never occurs in y_true
    logits = rng.normal(size=(n, n_labels))
    logits[np.arange(n), true] += 1.0
    prob = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.zeros((n, n_labels), dtype=bool)
    y[np.arange(n), true] = True
    return y, prob, true


@pytest.fixture(autouse=True)
def _quiet_sklearn():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn's zero-division / undefined-metric warnings
        yield


# --- multi-label against scikit-learn -------------------------------------------------------------


@pytest.mark.parametrize(
    "seed,n,n_labels,decimals", [(0, 40, 5, 1), (1, 200, 12, 2), (2, 500, 30, None), (3, 7, 3, 1)]
)
def test_multi_label_metrics_match_sklearn(seed, n, n_labels, decimals):
    y, scores = _multi_case(seed, n, n_labels, decimals=decimals)
    rule = FixedThreshold(0.5, at_least_one=False)
    pred = scores >= 0.5
    out = evaluate(sp.csr_matrix(y.astype(np.uint8)), scores, task="multi", rule=rule)
    m = out["metrics"]
    for average in ("micro", "macro", "weighted", "samples"):
        p, r, f, _ = skm.precision_recall_fscore_support(y, pred, average=average, zero_division=0)
        assert m[f"{average}_precision"] == pytest.approx(p, abs=1e-12)
        assert m[f"{average}_recall"] == pytest.approx(r, abs=1e-12)
        assert m[f"{average}_f1"] == pytest.approx(f, abs=1e-12)
    assert m["subset_accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["hamming_loss"] == pytest.approx(skm.hamming_loss(y, pred))
    assert m["lrap"] == pytest.approx(skm.label_ranking_average_precision_score(y, scores), abs=1e-12)
    assert m["coverage_error"] == pytest.approx(skm.coverage_error(y, scores), abs=1e-12)
    defined = y.any(axis=0) & ~y.all(axis=0)
    assert m["macro_roc_auc"] == pytest.approx(
        skm.roc_auc_score(y[:, defined], scores[:, defined], average="macro")
    )
    assert m["micro_roc_auc"] == pytest.approx(skm.roc_auc_score(y, scores, average="micro"))
    assert m["macro_average_precision"] == pytest.approx(
        skm.average_precision_score(y[:, defined], scores[:, defined], average="macro")
    )
    assert m["micro_average_precision"] == pytest.approx(
        skm.average_precision_score(y, scores, average="micro")
    )
    assert m["n_labels_without_positives"] == 1 and out["labels_without_positives"] == ["0"]
    assert out["labels_without_negatives"] == [str(j) for j in np.flatnonzero(y.all(axis=0))]

    p, r, f, support = skm.precision_recall_fscore_support(y, pred, average=None, zero_division=0)
    for j, row in enumerate(out["per_label"]):
        assert row["label"] == str(j)
        assert row["support"] == support[j]
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx((p[j], r[j], f[j]), abs=1e-12)
        if defined[j]:
            assert row["roc_auc"] == pytest.approx(skm.roc_auc_score(y[:, j], scores[:, j]))
            assert row["average_precision"] == pytest.approx(
                skm.average_precision_score(y[:, j], scores[:, j])
            )
        else:
            assert row["roc_auc"] is None
    assert out["per_label"][0]["average_precision"] is None  # no positives: AP undefined


def test_a_label_without_negatives_is_reported_and_left_out_of_macro_auc():
    y = np.array([[1, 1], [0, 1], [1, 1]])
    s = np.array([[0.9, 0.2], [0.1, 0.3], [0.8, 0.9]])
    out = evaluate(y, s, task="multi", label_names=["a", "b"])
    assert out["labels_without_negatives"] == ["b"] and out["metrics"]["n_labels_without_negatives"] == 1
    assert out["metrics"]["macro_roc_auc"] == 1.0  # label a only
    assert out["per_label"][1]["roc_auc"] is None and out["per_label"][1]["average_precision"] == 1.0


def _brute_top_k_hits(y, scores, k):
    hits = []
    for i in range(len(y)):
        order = sorted(range(y.shape[1]), key=lambda j: (-scores[i, j], j))  # ties: lower index first
        hits.append(sum(y[i, j] for j in order[:k]))
    return np.array(hits, dtype=float)


@pytest.mark.parametrize("seed", [0, 1])
def test_precision_and_recall_at_k_match_a_brute_force_count(seed):
    y, scores = _multi_case(seed, 60, 8, decimals=1)  # many ties at one decimal
    m = evaluate(y, scores, task="multi", ks=(1, 2, 5, 8, 9))["metrics"]
    has = y.any(axis=1)
    for k in (1, 2, 5, 8):
        hits = _brute_top_k_hits(y[has], scores[has], k)
        assert m[f"p_at_{k}"] == pytest.approx((hits / k).mean())
        assert m[f"r_at_{k}"] == pytest.approx((hits / y[has].sum(axis=1)).mean())
    assert m["p_at_9"] is None and m["r_at_9"] is None  # k > number of labels


def test_top_k_hits_follow_the_same_tie_rule_as_the_top_k_decision():
    y, scores = _multi_case(5, 80, 9, decimals=1)
    for k in (1, 3, 4):
        pred = TopK(k).predict(scores)
        assert (pred.sum(axis=1) == k).all()
        np.testing.assert_array_equal(ranking.top_k_hits(y, scores, k), (y & pred).sum(axis=1))


def test_ap_and_auc_with_heavy_ties_match_sklearn():
    rng = np.random.default_rng(9)
    y = rng.random((300, 6)) < 0.3
    scores = rng.integers(0, 4, size=(300, 6)) / 4.0  # only four distinct scores
    ap, auc = ranking.ap_and_auc_columns(y, scores)
    for j in range(6):
        assert ap[j] == pytest.approx(skm.average_precision_score(y[:, j], scores[:, j]))
        assert auc[j] == pytest.approx(skm.roc_auc_score(y[:, j], scores[:, j]))


# --- single-label against scikit-learn ------------------------------------------------------------


@pytest.mark.parametrize("seed,n,n_labels", [(0, 50, 3), (1, 400, 7), (2, 1000, 20)])
def test_single_label_metrics_match_sklearn(seed, n, n_labels):
    y, prob, true = _single_case(seed, n, n_labels)
    out = evaluate(y, prob, task="single", label_names=[f"c{j}" for j in range(n_labels)])
    pred = prob.argmax(axis=1)
    labels = list(range(n_labels))
    m = out["metrics"]
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(true, pred))
    for average in ("micro", "macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(
            true, pred, labels=labels, average=average, zero_division=0
        )
        assert (m[f"{average}_precision"], m[f"{average}_recall"], m[f"{average}_f1"]) == pytest.approx(
            (p, r, f)
        )
    assert m["log_loss"] == pytest.approx(skm.log_loss(true, prob, labels=labels))
    assert out["confusion_matrix"] == skm.confusion_matrix(true, pred, labels=labels).tolist()
    p, r, f, support = skm.precision_recall_fscore_support(true, pred, labels=labels, zero_division=0)
    assert [row["label"] for row in out["per_label"]] == [f"c{j}" for j in labels]
    assert [row["support"] for row in out["per_label"]] == support.tolist()
    assert [row["f1"] for row in out["per_label"]] == pytest.approx(f.tolist())
    assert out["labels_without_positives"] == [f"c{n_labels - 1}"]
    assert out["rule"] == {"type": "argmax"}


def test_log_loss_clips_zeros_and_renormalises_rows():
    y = np.array([[1, 0], [0, 1]])
    scores = np.array([[2.0, 2.0], [0.0, 1.0]])  # row 0 sums to 4; row 1 has a hard zero
    m = evaluate(y, scores, task="single")["metrics"]
    # row 0 -> (0.5, 0.5): -log 0.5; row 1 -> about (eps, 1): -log 1 = 0
    assert m["log_loss"] == pytest.approx(np.log(2) / 2, rel=1e-9)
    assert np.isfinite(evaluate(y, np.array([[0.0, 1.0], [1.0, 0.0]]), task="single")["metrics"]["log_loss"])


# --- hand-computed cases --------------------------------------------------------------------------


def test_tiny_multi_label_case_worked_by_hand():
    # 3 docs x 3 labels (a, b, c), threshold 0.5 without the at-least-one fallback.
    #   doc  true    scores (a, b, c)     predicted
    #   0    {a, b}  0.9  0.6  0.2        {a, b}      tp=2 fp=0 fn=0
    #   1    {b}     0.7  0.4  0.1        {a}         tp=0 fp=1 fn=1
    #   2    {}      0.3  0.2  0.8        {c}         tp=0 fp=1 fn=0
    # per label: a tp=1 fp=1 fn=0 -> P=1/2 R=1 F1=2/3; b tp=1 fp=0 fn=1 -> P=1 R=1/2 F1=2/3;
    #            c tp=0 fp=1 fn=0 -> P=0 R=0 (no positives: zero_division=0) F1=0
    # micro: tp=2 fp=2 fn=1 -> P=1/2 R=2/3 F1=4/7; macro F1=(2/3+2/3+0)/3=4/9;
    # weighted by support (a:1, b:2, c:0): F1=(2/3*1 + 2/3*2)/3 = 2/3
    # samples: doc0 P=R=F1=1; doc1 0; doc2 P=0, R=0 (no true label), F1=0 -> all 1/3
    # subset accuracy 1/3; hamming: wrong cells (1a, 1b, 2c) = 3 / 9 = 1/3
    # P@1 over docs with a label (0, 1): doc0 top a (true) =1, doc1 top a (false) =0 -> 1/2;
    # R@1: doc0 1/2, doc1 0 -> 1/4
    # coverage: doc0 needs rank 2, doc1 b is 2nd -> 2, doc2 no label -> 0: (2+2+0)/3 = 4/3
    # LRAP: doc0 1, doc1 b at rank 2 -> 1/2, doc2 (no label) 1 -> 5/6
    y = np.array([[1, 1, 0], [0, 1, 0], [0, 0, 0]])
    s = np.array([[0.9, 0.6, 0.2], [0.7, 0.4, 0.1], [0.3, 0.2, 0.8]])
    out = evaluate(
        y, s, task="multi", label_names=["a", "b", "c"], rule=FixedThreshold(0.5, at_least_one=False), ks=(1,)
    )
    m = out["metrics"]
    expected = {
        "micro_precision": 1 / 2,
        "micro_recall": 2 / 3,
        "micro_f1": 4 / 7,
        "macro_f1": 4 / 9,
        "macro_precision": 1 / 2,
        "macro_recall": 1 / 2,
        "weighted_f1": 2 / 3,
        "samples_precision": 1 / 3,
        "samples_recall": 1 / 3,
        "samples_f1": 1 / 3,
        "subset_accuracy": 1 / 3,
        "hamming_loss": 1 / 3,
        "p_at_1": 1 / 2,
        "r_at_1": 1 / 4,
        "coverage_error": 4 / 3,
        "lrap": 5 / 6,
    }
    for name, value in expected.items():
        assert m[name] == pytest.approx(value), name
    assert out["labels_without_positives"] == ["c"] and m["n_labels_without_positives"] == 1
    assert out["per_label"][2] == {
        "label": "c",
        "support": 0,
        "predicted": 1,
        "precision": 0.0,
        "recall": 0.0,
        "f1": 0.0,
        "average_precision": None,
        "roc_auc": None,
    }
    # a: positives {0}, negatives {1, 2}: 0.9 beats both -> AUC 1; b: {0,1} vs {2}: 0.6, 0.4 > 0.2 -> 1
    assert m["macro_roc_auc"] == 1.0 and m["macro_average_precision"] == 1.0


def test_tiny_single_label_case_worked_by_hand():
    # true: 0, 0, 1, 2; predicted (argmax): 0, 1, 1, 1
    # class 0: tp=1 fp=0 fn=1 -> P=1 R=1/2 F1=2/3; class 1: tp=1 fp=2 fn=0 -> P=1/3 R=1 F1=1/2;
    # class 2: tp=0 fp=0 fn=1 -> 0. accuracy 2/4; macro F1 (2/3+1/2+0)/3 = 7/18;
    # weighted F1 (2*2/3 + 1*1/2 + 0)/4 = 11/24
    y = np.eye(3)[[0, 0, 1, 2]]
    s = np.array([[0.8, 0.1, 0.1], [0.2, 0.5, 0.3], [0.1, 0.6, 0.3], [0.3, 0.4, 0.3]])
    out = evaluate(y, s, task="single")
    m = out["metrics"]
    assert m["accuracy"] == 0.5 and m["micro_f1"] == 0.5
    assert m["macro_f1"] == pytest.approx(7 / 18) and m["weighted_f1"] == pytest.approx(11 / 24)
    assert out["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [0, 1, 0]]
    assert m["log_loss"] == pytest.approx(-np.mean(np.log([0.8, 0.2, 0.6, 0.3])))


# --- output shape, inputs, errors -----------------------------------------------------------------


def test_output_is_plain_json_and_sparse_equals_dense():
    y, scores = _multi_case(4, 100, 10)
    dense = evaluate(y, scores, task="multi", label_names=list("abcdefghij"))
    csr = evaluate(
        sp.csr_matrix(y.astype(np.uint8)),
        scores.astype(np.float32).astype(np.float64),
        task="multi",
        label_names=list("abcdefghij"),
    )
    assert json.loads(json.dumps(dense)) == dense  # JSON-serialisable, nothing lost
    assert csr == dense
    assert set(dense) >= {
        "task",
        "n_docs",
        "n_labels",
        "metrics",
        "per_label",
        "labels_without_positives",
        "rule",
    }
    assert dense["rule"] == {"type": "fixed_threshold", "threshold": 0.5, "at_least_one": True}
    assert evaluate(y, scores, task="multi", label_names=list("abcdefghij"), rule=dense["rule"]) == dense
    assert all(isinstance(v, (float, int)) or v is None for v in dense["metrics"].values())


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"task": "multilabel"}, "task must be 'single' or 'multi'"),
        ({"task": "multi", "label_names": ["a"]}, "pass one name per column"),
        ({"task": "multi", "ks": (0,)}, "ks must be whole numbers >= 1"),
        ({"task": "single"}, "exactly one true label per document, document 0 has 2"),
    ],
)
def test_bad_options_raise_one_line_errors(kwargs, message):
    y = np.array([[1, 1], [0, 1]])
    with pytest.raises(NlpkitError, match=message):
        evaluate(y, np.full((2, 2), 0.5), **kwargs)


def test_bad_arrays_raise_errors_naming_the_problem():
    with pytest.raises(NlpkitError, match=r"shape \(2, 3\) but the labels have shape \(2, 2\)"):
        evaluate(np.eye(2), np.zeros((2, 3)), task="single")
    with pytest.raises(NlpkitError, match="only 0/1, found 2 at row 1, column 0"):
        evaluate(np.array([[1, 0], [2, 0]]), np.zeros((2, 2)), task="multi")
    with pytest.raises(NlpkitError, match="non-finite value at row 0, column 1"):
        evaluate(np.eye(2), np.array([[0.5, np.nan], [0.1, 0.9]]), task="single")
    with pytest.raises(NlpkitError, match="exactly one label per document"):
        evaluate(np.eye(2), np.eye(2), task="single", rule=FixedThreshold(2.0, at_least_one=False))


# --- decision rules -------------------------------------------------------------------------------


def test_argmax_and_top_k_break_ties_toward_the_lower_label():
    s = np.array([[0.2, 0.4, 0.4], [0.5, 0.1, 0.5]])
    np.testing.assert_array_equal(Argmax().predict(s), [[0, 1, 0], [1, 0, 0]])
    np.testing.assert_array_equal(TopK(2).predict(s), [[0, 1, 1], [1, 0, 1]])
    np.testing.assert_array_equal(TopK(5).predict(s), np.ones((2, 3), bool))  # k > L: every label


def test_fixed_threshold_and_the_at_least_one_fallback():
    s = np.array([[0.7, 0.5, 0.1], [0.2, 0.3, 0.1]])
    np.testing.assert_array_equal(FixedThreshold(0.5, at_least_one=False).predict(s), [[1, 1, 0], [0, 0, 0]])
    # doc 1 has nothing >= 0.5: it gets its argmax (label 1)
    np.testing.assert_array_equal(decide(s, FixedThreshold(0.5)), [[1, 1, 0], [0, 1, 0]])


def test_global_threshold_found_on_a_constructed_case():
    # positives score 0.8, 0.7, 0.6; negatives 0.3 and 0.65. Candidates (predict >= t):
    #   t=0.8: tp1 fp0 -> F1 2/(1+3)=0.5;  0.7: tp2 -> 4/5=0.8;  0.65: tp2 fp1 -> 4/6;
    #   0.6: tp3 fp1 -> 6/7 (best);  0.3: tp3 fp2 -> 6/8.  Threshold: midpoint of 0.6 and 0.3.
    y = np.array([[1, 0], [1, 0], [0, 1], [0, 0]])
    s = np.array([[0.8, 0.1], [0.7, 0.1], [0.3, 0.6], [0.65, 0.1]])
    rule = GlobalThreshold(at_least_one=False).fit(y, s)
    assert rule.threshold_ == pytest.approx(0.45)
    assert rule.valid_micro_f1_ == pytest.approx(6 / 7)


@pytest.mark.parametrize("seed", range(6))
def test_tuned_thresholds_are_optimal_against_an_exhaustive_search(seed):
    rng = np.random.default_rng(seed)
    n, n_labels = int(rng.integers(5, 50)), int(rng.integers(1, 6))
    y = rng.random((n, n_labels)) < rng.uniform(0.05, 0.6)
    s = np.round(rng.random((n, n_labels)), 1)
    candidates = np.r_[np.unique(s), 2.0]
    thresholds, f1 = rules.best_label_thresholds(y, s)
    for j in range(n_labels):
        best = max(skm.f1_score(y[:, j], s[:, j] >= c, zero_division=0) for c in candidates)
        assert skm.f1_score(y[:, j], s[:, j] >= thresholds[j], zero_division=0) == pytest.approx(best)
        assert f1[j] == pytest.approx(best)
    for at_least_one in (False, True):
        rule = GlobalThreshold(at_least_one=at_least_one).fit(y, s)

        def micro(t, at_least_one=at_least_one):
            p = FixedThreshold(t, at_least_one=at_least_one).predict(s)
            return skm.f1_score(y.ravel(), p.ravel(), zero_division=0)

        best = max(micro(c) for c in candidates)
        assert micro(rule.threshold_) == pytest.approx(best)
        assert rule.valid_micro_f1_ == pytest.approx(best)


def test_per_label_threshold_falls_back_to_global_for_rare_labels():
    rng = np.random.default_rng(3)
    y = np.zeros((200, 3), dtype=bool)
    y[:60, 0] = True  # common
    y[100:102, 1] = True  # rare: 2 positives
    y[150:190, 2] = True
    s = np.clip(0.5 * y + 0.5 * rng.random(y.shape), 0, 1)
    rule = PerLabelThreshold(min_positives=5).fit(y, s)
    assert rule.fallback_labels_ == [1]
    assert rule.thresholds_[1] == rule.global_threshold_
    own, _ = rules.best_label_thresholds(y, s)
    assert rule.thresholds_[0] == own[0] and rule.thresholds_[2] == own[2]
    # Shrinkage moves a tuned threshold toward the global one, n_pos : shrink.
    shrunk = PerLabelThreshold(min_positives=5, shrink=60.0).fit(y, s)
    assert shrunk.thresholds_[0] == pytest.approx((own[0] + rule.global_threshold_) / 2)


def test_per_label_threshold_falls_back_when_the_tuned_f1_is_too_low():
    # Label 1 was never seen in training: its score is a constant 0. With 10 validation positives
    # out of 200, its F1-optimal threshold is "predict everything" (F1 = 20/210, about 0.095).
    rng = np.random.default_rng(4)
    y = np.zeros((200, 2), dtype=bool)
    y[:50, 0] = True
    y[100:110, 1] = True
    s = np.column_stack([np.clip(0.5 * y[:, 0] + 0.5 * rng.random(200), 0, 1), np.zeros(200)])
    unguarded = PerLabelThreshold(min_f1=0.0).fit(y, s)
    assert unguarded.predict(s)[:, 1].all() and unguarded.fallback_labels_ == []
    assert unguarded.valid_label_f1_[1] == pytest.approx(20 / 210)
    guarded = PerLabelThreshold().fit(y, s)  # default min_f1 = 0.2
    assert guarded.fallback_labels_ == [1]
    assert not guarded.predict(s)[:, 1].any()


def test_tuning_without_any_validation_positive_predicts_only_the_forced_label():
    y = np.zeros((6, 3), dtype=bool)
    s = np.random.default_rng(0).random((6, 3))
    rule = PerLabelThreshold().fit(y, s)
    assert rule.fallback_labels_ == [0, 1, 2]
    assert (rule.thresholds_ > s.max()).all()  # nothing passes a threshold ...
    np.testing.assert_array_equal(rule.predict(s), Argmax().predict(s))  # ... only at-least-one fires
    assert not GlobalThreshold(at_least_one=False).fit(y, s).predict(s).any()


def test_rules_round_trip_through_json():
    y, s = _multi_case(2, 120, 6)
    fitted = [
        Argmax(),
        TopK(3),
        FixedThreshold(0.3, at_least_one=False),
        GlobalThreshold().fit(y, s),
        PerLabelThreshold(min_positives=3, shrink=2.0).fit(y, s),
        ChooseRule(folds=3).fit(y, s),
    ]
    for rule in fitted:
        again = DecisionRule.from_dict(json.loads(json.dumps(rule.to_dict())))
        assert type(again) is type(rule) and again == rule
        np.testing.assert_array_equal(again.predict(s), rule.predict(s))


def test_rule_errors():
    with pytest.raises(ConfigError, match="unknown decision rule type 'median'; known: argmax"):
        DecisionRule.from_dict({"type": "median"})
    with pytest.raises(NlpkitError, match="not tuned yet"):
        GlobalThreshold().predict(np.zeros((2, 2)))
    with pytest.raises(NlpkitError, match="tuned for 3 labels but the scores have 2"):
        PerLabelThreshold().fit(np.eye(3), np.eye(3)).predict(np.zeros((2, 2)))
    with pytest.raises(ConfigError, match="k >= 1"):
        TopK(0)
    with pytest.raises(ConfigError, match="min_positives"):
        PerLabelThreshold(min_positives=0)


def test_tune_rule_picks_the_rule_for_the_task_and_strategy():
    y, s = _multi_case(6, 150, 8)
    y_single = np.eye(4)[np.arange(20) % 4]
    assert tune_rule(y_single, np.random.default_rng(0).random((20, 4)), task="single") == Argmax()
    auto = tune_rule(y, s, task="multi")  # the choose rule: global unless another is clearly better
    assert isinstance(auto, ChooseRule) and auto.chosen_ is not None and auto.rule_ is not None
    assert auto.at_least_one is False  # some validation documents have no label
    glob = tune_rule(y, s, task="multi", strategy="global")
    assert isinstance(glob, GlobalThreshold) and glob.threshold_ is not None and glob.at_least_one is False
    per_label = tune_rule(y, s, task="multi", strategy="per-label")
    assert isinstance(per_label, PerLabelThreshold) and per_label.thresholds_ is not None
    has = y.any(axis=1)
    assert tune_rule(y[has], s[has], task="multi", strategy="global").at_least_one is True  # all have labels
    assert tune_rule(y, s, task="multi", strategy="fixed") == FixedThreshold(0.5, at_least_one=False)
    assert tune_rule(y, s, task="multi", strategy="top2") == TopK(2)
    assert tune_rule(y, s, task="multi", strategy="per-label", at_least_one=True).at_least_one is True
    with pytest.raises(ConfigError, match="unknown decision strategy 'best'; choose one of: auto"):
        tune_rule(y, s, task="multi", strategy="best")
    with pytest.raises(ConfigError, match="is for multi-label data"):
        tune_rule(y_single, np.zeros((20, 4)), task="single", strategy="global")


@pytest.mark.parametrize("strategy, task, n_labels, message", [
    ("top-3", None, None, "unknown decision strategy 'top-3': topK is written without a hyphen, top3."),
    ("best", None, None, "unknown decision strategy 'best'; choose one of: auto, global, per-label, choose, fixed, "
                         "topK (e.g. top1) for multi-label data, argmax (= auto, choose) for single-label data."),
    ("top0", None, None, "decision strategy top0: K must be at least 1"),
    ("argmax", "multi", 59, "decision strategy argmax is for single-label data; the data is multi-label: choose one "
                            "of auto, global, per-label, choose, fixed, topK (e.g. top1)."),
    ("top1", "single", 4, "decision strategy top1 is for multi-label data; the data is single-label"),
    ("top59", "multi", 59, "decision strategy top59 would predict every one of the 59 labels of the data"),
    ("top999", "multi", 59, "decision strategy top999 would predict every one of the 59 labels of the data"),
])
def test_check_strategy_names_the_accepted_values(strategy, task, n_labels, message):
    with pytest.raises(ConfigError) as caught:
        check_strategy(strategy, task, n_labels)
    assert str(caught.value).startswith(message)


def test_check_strategy_accepts_the_documented_names():
    for name in ("auto", "global", "per-label", "choose", "fixed", "top1", "top58"):
        check_strategy(name, "multi", 59)
    for name in ("auto", "argmax", "choose"):
        check_strategy(name, "single", 4)
    check_strategy("top3", option="--rule")  # no task: valid for one of them


def test_tune_rule_refuses_top_k_that_keeps_every_label_and_the_hyphen_spelling():
    y, s = _multi_case(6, 150, 8)  # 8 labels
    assert tune_rule(y, s, task="multi", strategy="top7") == TopK(7)
    with pytest.raises(ConfigError, match="top8 would predict every one of the 8 labels"):
        tune_rule(y, s, task="multi", strategy="top8")
    with pytest.raises(ConfigError, match="without a hyphen, top3"):
        tune_rule(y, s, task="multi", strategy="top-3")
    with pytest.raises(ConfigError, match="argmax is for single-label data"):
        tune_rule(y, s, task="multi", strategy="argmax")


def test_saved_rule_must_be_there_tuned_and_fit_the_labels():
    rule = GlobalThreshold().fit(np.eye(3, dtype=bool), np.eye(3))
    assert saved_rule(rule.to_dict(), "run.json", 3) == rule
    assert saved_rule({"type": "argmax"}, "run.json") == Argmax()
    assert saved_rule({"type": "top_k", "k": 2}, "run.json", 3) == TopK(2)
    for d, fragment in [
        (None, "run.json has no decision rule"),
        ({}, "run.json: the decision rule is damaged (a decision rule must be a JSON object"),
        ({"type": "global_threshold", "at_least_one": True}, "has lost its tuned threshold(s)"),
        ({"type": "global_threshold", "at_least_one": True, "threshold": "abc"},
         "damaged (threshold must be a number, got 'abc')"),
        ({"type": "per_label_threshold"}, "has lost its tuned threshold(s)"),
        ({"type": "per_label_threshold", "thresholds": 5}, "the decision rule is damaged"),
        ({"type": "per_label_threshold", "thresholds": [0.5, 0.5]}, "does not fit the model's 3 labels"),
    ]:
        with pytest.raises(NlpkitError) as caught:
            saved_rule(d, "run.json", 3)
        assert fragment in str(caught.value) and str(caught.value).endswith("re-run the experiment to record it again.")


def test_headline_metric_per_task():
    from nlpkit.metrics import headline_metric

    assert headline_metric("single") == "accuracy" and headline_metric("multi") == "micro_f1"
    with pytest.raises(ConfigError, match="task must be 'single' or 'multi'"):
        headline_metric("regression")
