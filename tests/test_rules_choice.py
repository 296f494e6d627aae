"""The ``choose`` decision rule (issue #22) and documents whose gold label set is empty.

Tiny synthetic score matrices, each built so that one candidate is clearly right (or none is),
then the rule through ``run_experiment``, ``nlpkit baseline --rule choose`` and ``nlpkit predict``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import fake_model
from conftest import make_dataset
from nlpkit.cli import app
from nlpkit.errors import ConfigError, NlpkitError
from nlpkit.experiment import run_experiment
from nlpkit.metrics import (
    ChooseRule,
    DecisionRule,
    GlobalThreshold,
    PerLabelThreshold,
    TopK,
    evaluate,
    get_metric,
    tune_rule,
)
from nlpkit.metrics.rules import cardinality_k, check_strategy, saved_rule

runner = CliRunner()


def _per_label_case(seed=0, n=400):
    """Three labels whose positives and negatives part at 0.2, 0.5 and 0.8: per-label thresholds
    separate every label exactly, no single threshold can."""
    rng = np.random.default_rng(seed)
    y = rng.random((n, 3)) < 0.3
    cuts = np.array([0.2, 0.5, 0.8])
    width = rng.uniform(0.02, 0.15, size=(n, 3))
    return y, np.clip(np.where(y, cuts + width, cuts - width), 0, 1)


def _top_k_case(seed=0, n=300, n_labels=6, k=2):
    """Every document has exactly k labels, ranked first, but each document's scores sit at its own
    level (0 to 0.6): the top k are always right, no threshold is."""
    rng = np.random.default_rng(seed)
    y = np.zeros((n, n_labels), dtype=bool)
    for i in range(n):
        y[i, rng.choice(n_labels, size=k, replace=False)] = True
    level = rng.uniform(0, 0.6, size=(n, 1))
    return y, level + 0.3 * y + 0.05 * rng.random((n, n_labels))


def _shared_threshold_case(seed=0, n=400, n_labels=5):
    """Every label scored alike (positives a little higher, with overlap): one threshold is right
    for all of them, per-label thresholds only fit the noise."""
    rng = np.random.default_rng(seed)
    y = rng.random((n, n_labels)) < 0.25
    return y, np.clip(0.25 * y + 0.75 * rng.random((n, n_labels)), 0, 1)


# --- the choice --------------------------------------------------------------------------------

def test_choose_picks_per_label_thresholds_when_the_labels_need_their_own():
    y, s = _per_label_case()
    rule = ChooseRule().fit(y, s)
    assert rule.chosen_ == "per_label" and isinstance(rule.rule_, PerLabelThreshold)
    ev = rule.evidence_["candidates"]
    assert ev["per_label"]["score"] > ev["global"]["score"] + 0.05
    assert ev["per_label"]["advantage_68"][0] > 0  # better by more than one standard error
    assert rule.evidence_["documents"] == 400 and rule.evidence_["folds"] == 5
    # fitted on all tuning documents: the same thresholds as the per-label rule on its own
    alone = PerLabelThreshold(shrink=rule.shrink).fit(y, s)
    np.testing.assert_array_equal(rule.rule_.thresholds_, alone.thresholds_)
    np.testing.assert_array_equal(rule.predict(s), alone.predict(s))


def test_choose_picks_top_k_when_every_document_has_k_labels():
    y, s = _top_k_case(k=2)
    rule = ChooseRule().fit(y, s)
    assert rule.chosen_ == "top_k" and rule.rule_ == TopK(2)
    assert rule.evidence_["candidates"]["top_k"]["k"] == 2
    assert rule.evidence_["candidates"]["top_k"]["score"] == pytest.approx(1.0)


@pytest.mark.parametrize("seed", range(4))
def test_choose_keeps_the_global_threshold_when_labels_share_one(seed):
    y, s = _shared_threshold_case(seed)
    rule = ChooseRule(seed=seed).fit(y, s)
    assert rule.chosen_ == "global" and isinstance(rule.rule_, GlobalThreshold)
    assert rule.rule_ == GlobalThreshold(at_least_one=True).fit(y, s)  # exactly today's auto


@pytest.mark.parametrize("seed", range(6))
def test_one_standard_error_rule_keeps_global_on_noise(seed):
    # Scores carry no information; whichever candidate scores highest held out does so by chance.
    rng = np.random.default_rng(100 + seed)
    y = rng.random((150, 8)) < 0.2
    s = rng.random((150, 8))
    rule = ChooseRule(seed=seed).fit(y, s)
    assert rule.chosen_ == "global"
    for name, row in rule.evidence_["candidates"].items():
        if name != "global":
            assert row["advantage_68"][0] <= 0


def test_choose_judges_on_held_out_documents_never_in_sample():
    # In sample, per-label thresholds always fit at least as well as one global threshold (the
    # global one is among their choices, label by label); held out on this noise they do not.
    rng = np.random.default_rng(7)
    y = rng.random((120, 10)) < 0.15
    s = rng.random((120, 10))
    micro = get_metric("micro_f1")
    in_sample_per_label = micro(y, PerLabelThreshold(min_positives=1, min_f1=0.0).fit(y, s).predict(s))
    rule = ChooseRule().fit(y, s)
    held_out = rule.evidence_["candidates"]["per_label"]["score"]
    assert held_out < in_sample_per_label
    assert rule.chosen_ == "global"


def test_choose_is_deterministic_and_seeded():
    y, s = _shared_threshold_case(3)
    assert ChooseRule().fit(y, s).to_dict() == ChooseRule().fit(y, s).to_dict()
    assert ChooseRule(seed=1).fit(y, s).evidence_ != ChooseRule(seed=2).fit(y, s).evidence_


def test_choose_with_a_macro_metric_and_few_documents_or_one_label():
    y, s = _per_label_case(n=200)
    assert ChooseRule(metric="macro_f1").fit(y, s).chosen_ == "per_label"
    one = ChooseRule().fit(y[:1], s[:1])  # one document: nothing to judge on, the reference stays
    assert one.chosen_ == "global" and one.evidence_["folds"] == 0 and "too few" in one.evidence_["note"]
    three = ChooseRule().fit(y[:3], s[:3])  # fewer documents than folds: one fold per document
    assert three.evidence_["folds"] == 3
    single_column = ChooseRule().fit(y[:, :1], s[:, :1])  # top-k of the only label is no rule
    assert set(single_column.evidence_["candidates"]) == {"global", "per_label"}


def test_cardinality_k():
    assert cardinality_k(np.eye(4, dtype=bool)) == 1
    assert cardinality_k(np.zeros((4, 4), dtype=bool)) == 1  # at least one
    assert cardinality_k(np.ones((4, 4), dtype=bool)) == 3  # below the number of labels
    assert cardinality_k(np.array([[1, 1, 0], [1, 1, 1], [1, 1, 0]], dtype=bool)) == 2


def test_choose_parameters_are_checked():
    for kwargs, fragment in [
        ({"metric": "hamming_loss"}, "higher is better"),
        ({"metric": "accuracy"}, "multi-label metric"),
        ({"metric": "f2"}, "unknown metric 'f2'"),
        ({"folds": 1}, "folds must be a whole number >= 2"),
        ({"shrink": -1}, "shrink must be >= 0"),
        ({"seed": -3}, "seed must be a whole number >= 0"),
        ({"at_least_one": "yes"}, "at_least_one must be true or false"),
    ]:
        with pytest.raises(ConfigError, match=fragment):
            ChooseRule(**kwargs)
    with pytest.raises(NlpkitError, match="not tuned yet"):
        ChooseRule().predict(np.zeros((2, 3)))


# --- recorded and rebuilt ----------------------------------------------------------------------

@pytest.mark.parametrize("case", [_per_label_case, _top_k_case, _shared_threshold_case])
def test_choose_round_trips_through_json_with_its_evidence(case):
    y, s = case()
    rule = ChooseRule().fit(y, s)
    d = json.loads(json.dumps(rule.to_dict()))
    assert d["type"] == "choose" and d["chosen"] == rule.chosen_
    assert d["rule"] == rule.rule_.to_dict()
    assert set(d["evidence"]["candidates"]) == {"global", "per_label", "top_k"}
    assert all("score" in row for row in d["evidence"]["candidates"].values())
    again = DecisionRule.from_dict(d)
    assert again == rule and again.chosen_ == rule.chosen_ and again.evidence_ == rule.evidence_
    np.testing.assert_array_equal(again.predict(s), rule.predict(s))
    assert saved_rule(d, "run.json", y.shape[1]) == rule
    assert "->" in repr(again)  # the run's log says what was chosen


def test_a_damaged_choose_rule_is_refused_in_one_line():
    y, s = _per_label_case()
    good = ChooseRule().fit(y, s).to_dict()
    for edit, fragment in [
        ({"rule": None}, "the decision rule is damaged"),
        ({"chosen": "median"}, "the decision rule is damaged"),
        ({"rule": {"type": "choose"}}, "the decision rule is damaged"),
        ({"evidence": [1, 2]}, "the decision rule is damaged"),
        ({"surprise": 1}, "the decision rule is damaged"),
        ({"rule": {"type": "per_label_threshold", "at_least_one": True}}, "has lost its tuned threshold(s)"),
        ({"rule": {"type": "per_label_threshold", "thresholds": [0.5]}}, "does not fit the model's 3 labels"),
    ]:
        with pytest.raises(NlpkitError) as caught:
            saved_rule({**good, **edit}, "run.json", 3)
        assert fragment in str(caught.value), (edit, str(caught.value))
    untuned = {k: v for k, v in good.items() if k not in ("chosen", "rule", "evidence")}
    with pytest.raises(NlpkitError, match="has lost its tuned threshold"):
        saved_rule(untuned, "run.json", 3)


def test_tune_rule_and_check_strategy_know_choose():
    y, s = _per_label_case()
    rule = tune_rule(y, s, task="multi", strategy="choose")
    assert isinstance(rule, ChooseRule) and rule.chosen_ == "per_label"
    assert not y.any(axis=1).all() and rule.at_least_one is False  # some documents have no label
    assert tune_rule(y, s, task="multi", strategy="choose", at_least_one=True).rule_.at_least_one is True
    # auto is the choose rule; global is one option away
    assert tune_rule(y, s, task="multi").to_dict() == rule.to_dict()
    assert tune_rule(y, s, task="multi", strategy="global") == GlobalThreshold(at_least_one=False).fit(y, s)
    single = np.eye(3, dtype=bool)[np.arange(30) % 3]
    assert tune_rule(single, np.random.default_rng(0).random((30, 3)), task="single", strategy="choose").type == "argmax"
    check_strategy("choose", "multi", 2)
    check_strategy("choose", "single", 2)
    check_strategy("choose", option="--rule")


# --- documents without labels ------------------------------------------------------------------

def test_documents_without_labels_are_scored_by_every_metric():
    # docs 0-1: gold {a}; doc 2: gold {} predicted {}; doc 3: gold {} predicted {b}
    y = np.array([[1, 0], [1, 0], [0, 0], [0, 0]], dtype=bool)
    s = np.array([[0.9, 0.1], [0.8, 0.2], [0.1, 0.2], [0.1, 0.7]])
    out = evaluate(y, s, task="multi", rule={"type": "fixed_threshold", "threshold": 0.5, "at_least_one": False})
    m = out["metrics"]
    assert out["n_docs"] == 4  # kept
    assert m["subset_accuracy"] == pytest.approx(3 / 4)  # an empty prediction for an empty gold set is exact
    assert m["micro_precision"] == pytest.approx(2 / 3) and m["micro_recall"] == 1.0
    assert m["hamming_loss"] == pytest.approx(1 / 8)
    # Samples averages follow scikit-learn's zero_division=0: a document with no gold and no
    # predicted label scores 0, though its prediction is exactly right; subset accuracy credits it.
    assert m["samples_f1"] == pytest.approx((1 + 1 + 0 + 0) / 4)
    assert m["samples_recall"] == pytest.approx(2 / 4)
    for name in ("samples_f1", "subset_accuracy", "micro_f1", "macro_f1", "hamming_loss"):
        pred = np.array([[1, 0], [1, 0], [0, 0], [0, 1]], dtype=bool)
        assert get_metric(name)(y, pred) == pytest.approx(m[name])  # bootstrap metrics agree
    # With at-least-one, the empty gold document gets a forced label and loses exact match.
    forced = evaluate(y, s, task="multi", rule={"type": "fixed_threshold", "threshold": 0.5, "at_least_one": True})
    assert forced["metrics"]["subset_accuracy"] == pytest.approx(2 / 4)


def test_tuned_rules_may_predict_nothing_when_tuning_documents_have_no_labels():
    rng = np.random.default_rng(0)
    y = rng.random((200, 4)) < 0.3
    y[:40] = False  # 40 documents without labels, scored low everywhere
    s = np.clip(0.5 * y + 0.5 * rng.random(y.shape), 0, 1)
    s[:40] *= 0.3
    for strategy in ("auto", "global", "per-label", "choose"):
        rule = tune_rule(y, s, task="multi", strategy=strategy)
        assert rule.at_least_one is False
        assert not rule.predict(s)[:40].any(axis=1).all()  # some documents get no label


def _parts_with_unlabelled_train():
    """Multi-label parts where only TRAIN has documents without labels (valid and test do not)."""
    names = ["a", "b", "c"]
    fill = ["filler words here", "nothing special", "plain text", "more filler", "other words"]
    tr_texts = ["alpha one", "alpha beta", "beta two", "gamma three", "alpha gamma", "beta gamma", *fill]
    tr_labels = [["a"], ["a", "b"], ["b"], ["c"], ["a", "c"], ["b", "c"], *[[] for _ in fill]]
    va = make_dataset(["alpha two", "beta three", "gamma one", "alpha beta"], [["a"], ["b"], ["c"], ["a", "b"]],
                      task="multi", label_names=names, ids=[f"va{i}" for i in range(4)])
    te = make_dataset(["alpha x", "gamma y", "unrelated words"], [["a"], ["c"], ["b"]], task="multi",
                      label_names=names, ids=["te0", "te1", "te2"])
    tr = make_dataset(tr_texts, tr_labels, task="multi", label_names=names, ids=[f"tr{i}" for i in range(11)])
    return {"train": tr, "valid": va, "test": te}


@pytest.mark.parametrize("strategy", ["auto", "choose"])
def test_empty_predictions_are_allowed_when_train_has_documents_without_labels(make_split, fake_registry, strategy):
    parts = _parts_with_unlabelled_train()
    assert parts["valid"].y.sum(axis=1).min() > 0  # valid alone would say: always predict a label
    split = make_split(parts, f"unlabelled-{strategy}")
    assert len(split.train) == 11  # documents without labels are kept in the split
    run = run_experiment(fake_model.KeywordClassifier(), split, config={}, seed=0, rule_strategy=strategy)
    rule = DecisionRule.from_dict(run.info["rule"])
    assert rule.at_least_one is False
    _ids, _scores, pred = run.predictions()
    assert not pred[2].any()  # "unrelated words" shares no word with any label: no label predicted


def test_without_unlabelled_documents_every_document_still_gets_a_label(multi_split):
    from nlpkit.models.majority import MajorityClassifier

    run = run_experiment(MajorityClassifier(), multi_split, config={}, seed=0, rule_strategy="choose")
    assert run.info["rule"]["at_least_one"] is True and run.info["rule"]["rule"]["at_least_one"] is True


# --- through the experiment and the command line -----------------------------------------------

def test_choose_never_looks_at_the_test_part(make_split, fake_registry, multi_parts):
    run = run_experiment(fake_model.KeywordClassifier(), make_split(multi_parts, "real"), config={}, seed=0,
                         rule_strategy="choose")
    test = multi_parts["test"]
    shuffled = test.subset(np.arange(len(test)))
    shuffled.y = test.y[np.random.default_rng(0).permutation(len(test))][:, ::-1].tocsr()
    other = {**multi_parts, "test": shuffled}
    run2 = run_experiment(fake_model.KeywordClassifier(), make_split(other, "shuffled"), config={}, seed=0,
                          rule_strategy="choose")
    assert run.info["rule"] == run2.info["rule"]
    assert run.info["rule"]["evidence"]["documents"] == len(multi_parts["valid"])  # tuned on valid alone
    assert "chosen" in run.info["rule"] and run.metrics()["test"]["rule"] == run.info["rule"]


def test_baseline_rule_choose_is_recorded_and_predict_applies_it(multi_split, runs_dir, tmp_path):
    result = runner.invoke(app, ["baseline", str(multi_split.path), "-m", "majority", "--rule", "choose", "--json"])
    assert result.exit_code == 0, result.output
    run_dir = runs_dir / json.loads(result.stdout)[0]["run"].split("/")[-1]
    run_json = json.loads((run_dir / "run.json").read_text())
    assert run_json["config"]["rule_strategy"] == "choose"
    rule = run_json["rule"]
    assert rule["type"] == "choose" and rule["chosen"] in ("global", "per_label", "top_k")
    assert set(rule["evidence"]["candidates"]) == {"global", "per_label", "top_k"}
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"id": "n1", "text": "alpha beta"}\n')
    out = runner.invoke(app, ["predict", str(run_dir), str(inp)])
    assert out.exit_code == 0, out.output
    expected = DecisionRule.from_dict(rule).predict(np.array([[0.5, 0.5, 0.5, 0.0]]))[0]  # majority's priors
    assert json.loads(out.stdout.splitlines()[0])["labels"] == [n for n, on in zip(["a", "b", "c", "never"], expected)
                                                                 if on]


def test_baseline_rule_choose_on_single_label_data_is_argmax(single_split, runs_dir):
    result = runner.invoke(app, ["baseline", str(single_split.path), "-m", "majority", "--rule", "choose", "--json"])
    assert result.exit_code == 0, result.output
    run_dir = runs_dir / json.loads(result.stdout)[0]["run"].split("/")[-1]
    assert json.loads((run_dir / "run.json").read_text())["rule"] == {"type": "argmax"}
