"""run_experiment: one recorded run with metrics, predictions, model and provenance."""

from __future__ import annotations

import json

import numpy as np
import pytest

import fake_model
from nlpkit.errors import DataError, NlpkitError
from nlpkit.experiment import carve_valid, labels_unseen_in_train, run_experiment
from nlpkit.models import load_model
from nlpkit.models.majority import MajorityClassifier
from nlpkit.runs import list_runs


def test_single_label_run_records_everything(single_split, runs_dir, fake_registry):
    stages = []
    run = run_experiment(fake_model.KeywordClassifier(), single_split, config={"model": "fake-keyword"},
                         seed=7, progress=stages.append)
    assert stages == ["fit", "predict-valid", "tune-rule", "predict-test", "evaluate", "save"]
    assert run.path.parent == runs_dir and [r.name for r in list_runs()] == [run.name]
    info = run.info
    assert info["kind"] == "baseline" and info["model"] == "fake-keyword" and info["seed"] == 7
    assert info["config"] == {"model": "fake-keyword", "rule_strategy": "auto", "valid_carved_from_train": False}
    data = info["data"]
    assert data["split_sha256"] == single_split.fingerprint
    assert data["test_sha256"] == single_split.test_fingerprint
    assert data["label_names"] == single_split.label_names and data["task"] == "single"
    assert (data["n_train"], data["n_valid"], data["n_test"]) == (12, 3, 4)
    assert data["source"] == "tiny-test-data"
    assert set(info["timings"]) >= {"fit_seconds", "predict_seconds", "predict_docs_per_s"}
    assert info["model_size_bytes"] == sum(p.stat().st_size for p in run.model_dir.rglob("*") if p.is_file()) > 0
    assert info["rule"] == {"type": "argmax"}
    assert info["fit_info"]["vocab_sizes"][3] == 0  # the label never seen in train
    assert info["labels_unseen_in_train"] == ["zzz-unseen"]
    assert "never in train (zzz-unseen)" in info["warnings"][0]
    assert {"python", "nlpkit", "numpy"} <= set(info["versions"])
    assert list(info)[-1] == "status"

    metrics = run.metrics()
    assert metrics["test"]["n_docs"] == 4 and metrics["valid"]["n_docs"] == 3
    # the three seen classes are recognised by keywords; the unseen one is a miss, not a crash
    assert metrics["test"]["metrics"]["accuracy"] == pytest.approx(0.75)

    ids, scores, pred = run.predictions()
    assert ids == single_split.test.ids
    assert scores.shape == pred.shape == (4, 4) and (pred.sum(axis=1) == 1).all()
    model = load_model(run.model_dir)
    np.testing.assert_allclose(model.predict_proba(single_split.test.texts), scores, atol=1e-6)
    assert "warning: 1 label(s) occur in test" in (run.path / "log.txt").read_text()


def test_multi_label_run_with_tuned_rule(multi_split):
    run = run_experiment(MajorityClassifier(), multi_split, kind="baseline", config={}, seed=0,
                         extra_info={"note": "floor"})
    assert run.info["note"] == "floor"
    assert run.info["labels_unseen_in_train"] == ["never"]
    assert run.info["rule"]["type"] != "argmax"  # a tuned multi-label rule, reloadable from run.json
    from nlpkit.metrics import DecisionRule

    rule = DecisionRule.from_dict(run.info["rule"])
    ids, scores, pred = run.predictions()
    np.testing.assert_array_equal(rule.predict(scores), pred.astype(bool))
    assert "micro_f1" in run.metrics()["test"]["metrics"]


def test_valid_is_carved_from_train_when_missing(make_split, single_parts):
    split = make_split({"train": single_parts["train"], "test": single_parts["test"]}, "novalid")
    stages = []
    run = run_experiment(MajorityClassifier(), split, config={"x": 1}, seed=3, progress=stages.append)
    assert stages[0] == "carve-valid"
    cfg = run.info["config"]
    assert cfg["valid_carved_from_train"] is True and cfg["valid_fraction"] == 0.1 and cfg["x"] == 1
    n = run.info["data"]
    assert n["n_train"] + n["n_valid"] == 12 and n["n_valid"] == 1


def test_carve_valid_is_seeded_stratified_and_disjoint(data_dir):
    from nlpkit.data import read_dataset

    ds = read_dataset(data_dir / "agnews_sample.jsonl")
    tr1, va1 = carve_valid(ds, fraction=0.1, seed=1)
    tr2, va2 = carve_valid(ds, fraction=0.1, seed=1)
    _, va3 = carve_valid(ds, fraction=0.1, seed=2)
    assert va1.ids == va2.ids and va1.ids != va3.ids
    assert len(va1) == 200 and len(tr1) == 1800 and not set(va1.ids) & set(tr1.ids)
    share = np.asarray(va1.y.sum(axis=0)).ravel() / np.asarray(ds.y.sum(axis=0)).ravel()
    assert np.all(np.abs(share - 0.1) < 0.02), share  # each class keeps ~10% in valid


def test_errors_leave_no_run(make_split, single_parts, runs_dir):
    no_test = make_split({"train": single_parts["train"]}, "notest")
    with pytest.raises(DataError, match="has no test part"):
        run_experiment(MajorityClassifier(), no_test, config={}, seed=0)

    folds = make_split({"fold0": single_parts["train"], "fold1": single_parts["valid"], "test": single_parts["test"]},
                       "folds")
    with pytest.raises(DataError, match="has 2 folds but no train part"):
        run_experiment(MajorityClassifier(), folds, config={}, seed=0)

    class Exploding(MajorityClassifier):
        def predict_proba(self, texts):
            raise NlpkitError("boom in predict")

    split = make_split(single_parts, "ok")
    with pytest.raises(NlpkitError, match="boom in predict"):
        run_experiment(Exploding(), split, config={}, seed=0)
    assert list_runs() == []
    assert not runs_dir.exists() or list(runs_dir.iterdir()) == []  # not even a .tmp- folder


def test_labels_unseen_in_train(single_parts):
    assert labels_unseen_in_train(single_parts["train"], single_parts["test"]) == ["zzz-unseen"]
    assert labels_unseen_in_train(single_parts["train"], single_parts["valid"]) == []


def test_carve_valid_small_train(single_parts):
    with pytest.raises(DataError, match="too few to carve"):
        carve_valid(single_parts["train"].subset([0]), seed=0)
    tr, va = carve_valid(single_parts["train"].subset([0, 4, 8]), seed=0)  # 10% of 3 rounds to 0
    assert (len(tr), len(va)) == (2, 1)


def test_end_to_end_split_cli_experiment_predict_cli(data_dir, tmp_path):
    """`nlpkit split` -> run_experiment -> `nlpkit predict`: provenance of the input file survives."""
    from typer.testing import CliRunner

    from nlpkit.cli import app
    from nlpkit.data import file_sha256, load_split

    runner = CliRunner()
    src = data_dir / "reuters_sample.jsonl"
    out = tmp_path / "reuters_split"
    result = runner.invoke(app, ["split", str(src), "--out", str(out), "--seed", "1", "--json"])
    assert result.exit_code == 0, result.output
    split = load_split(out)
    run = run_experiment(MajorityClassifier(), split, config={"split_dir": str(out)}, seed=1)
    data = run.info["data"]
    assert data["source"] == str(src) and data["source_sha256"] == file_sha256(src)
    assert data["sources"] == {"input": {"path": str(src), "sha256": file_sha256(src)}}
    assert data["task"] == "multi" and len(data["label_names"]) == split.train.n_labels

    pred = runner.invoke(app, ["predict", str(run.path), str(out / "test.jsonl")])
    assert pred.exit_code == 0, pred.output
    recs = [json.loads(line) for line in pred.stdout.splitlines()]
    assert [r["id"] for r in recs] == split.test.ids
    _, _, stored = run.predictions()
    names = data["label_names"]
    # the CLI applies the same tuned rule as the recorded predictions (it lists labels by score)
    assert [sorted(r["labels"]) for r in recs] == [sorted(names[j] for j in np.flatnonzero(row)) for row in stored]
    assert all("true_labels" in r for r in recs)


def test_source_hash_of_separate_part_files():
    from nlpkit.experiment import _manifest_source, _manifest_source_sha256

    one = {"sources": {"input": {"path": "a.csv", "sha256": "h"}}}
    assert (_manifest_source(one), _manifest_source_sha256(one)) == ("a.csv", "h")
    parts = {"sources": {"train": {"path": "tr", "sha256": "1"}, "test": {"path": "te", "sha256": "2"}}}
    swapped = {"sources": {"train": {"path": "tr", "sha256": "2"}, "test": {"path": "te", "sha256": "1"}}}
    assert _manifest_source(parts) is None
    assert len(_manifest_source_sha256(parts)) == 64
    assert _manifest_source_sha256(parts) != _manifest_source_sha256(swapped)
    assert _manifest_source_sha256({}) is None


NlpkitLikeWarning = type("NlpkitLikeWarning", (UserWarning,), {"__module__": "nlpkit.models.somefamily"})


class _Warny(MajorityClassifier):
    def fit(self, train, valid=None, progress=None):
        import warnings

        warnings.warn("library chatter", DeprecationWarning)
        warnings.warn("3 labels cannot be learned", NlpkitLikeWarning)
        return super().fit(train, valid, progress)


@pytest.mark.filterwarnings("ignore:library chatter:DeprecationWarning")
def test_model_warnings_are_logged_recorded_and_reissued(single_split):
    with pytest.warns(NlpkitLikeWarning, match="cannot be learned"):
        run = run_experiment(_Warny(), single_split, config={}, seed=0)
    assert "3 labels cannot be learned" in run.info["warnings"]
    assert "library chatter" not in " ".join(run.info["warnings"])
    log = (run.path / "log.txt").read_text()
    assert "warning (DeprecationWarning): library chatter" in log
    assert "warning (NlpkitLikeWarning): 3 labels cannot be learned" in log


def _reuters_split(make_split, data_dir, name="reuters"):
    from nlpkit.data import read_dataset

    ds = read_dataset(data_dir / "reuters_sample.jsonl")
    rest, test = carve_valid(ds, fraction=0.25, seed=0)
    train, valid = carve_valid(rest, fraction=0.15, seed=0)
    return make_split({"train": train, "valid": valid, "test": test}, name)


@pytest.mark.slow
def test_cross_fitted_run_tunes_on_out_of_fold_scores_and_never_on_test(make_split, data_dir):
    from nlpkit.metrics import evaluate
    from nlpkit.models.tfidf_lr import TfidfLogisticRegression

    split = _reuters_split(make_split, data_dir)
    run = run_experiment(TfidfLogisticRegression(n_jobs=1), split, kind="baseline", config={}, seed=0)
    n = len(split.train) + len(split.valid)
    assert run.info["config"]["cross_fit"] == {"folds": 3, "documents": n}
    assert run.info["fit_info"]["cross_fit"]["documents"] == n
    # valid metrics come from out-of-fold scores, not from the final model, which saw valid
    recorded = run.metrics()["valid"]["metrics"]["micro_f1"]
    rule = run.info["rule"]
    from nlpkit.metrics import DecisionRule

    in_sample = evaluate(split.valid.y, load_model(run.model_dir).predict_proba(split.valid.texts), task="multi",
                         rule=DecisionRule.from_dict(rule))["metrics"]["micro_f1"]
    assert recorded < in_sample - 0.02
    # the test labels play no part in any decision: shuffled test labels leave the rule unchanged
    rng = np.random.default_rng(0)
    test = split.test
    shuffled = test.subset(np.arange(len(test)))
    shuffled.y = test.y[rng.permutation(len(test))]
    other = make_split({"train": split.train, "valid": split.valid, "test": shuffled}, "shuffled")
    run2 = run_experiment(TfidfLogisticRegression(n_jobs=1), other, kind="baseline", config={}, seed=0)
    assert run2.info["rule"] == rule


def test_generic_cross_fit_scores_each_fold_with_a_model_that_never_saw_it(multi_parts):
    # KeywordClassifier does not override Classifier.cross_fit: this is the generic version
    from nlpkit.experiment import join_parts
    from nlpkit.split import kfold

    data = join_parts(multi_parts["train"], multi_parts["valid"])
    fold_of = kfold(data.y, 2, seed=0)
    model = fake_model.KeywordClassifier()
    oof = model.cross_fit(data, fold_of)
    for fold in (0, 1):
        held = fold_of == fold
        alone = fake_model.KeywordClassifier().fit(data.subset(~held))
        np.testing.assert_array_equal(oof[held], alone.predict_proba(data.subset(held).texts))
    np.testing.assert_array_equal(model.predict_proba(data.texts),
                                  fake_model.KeywordClassifier().fit(data).predict_proba(data.texts))


def test_models_that_do_not_cross_fit_tune_on_valid(multi_split):
    run = run_experiment(MajorityClassifier(), multi_split, kind="baseline", config={}, seed=0)
    assert "cross_fit" not in run.info["config"]


@pytest.mark.parametrize("model_params, strategy, fragment", [
    ({"cross_fit": 8}, "auto", "cross_fit=8 folds need at least 16 documents in train + valid"),
    ({}, "top4", "top4 would predict every one of the 4 labels"),
    ({}, "argmax", "argmax is for single-label data"),
])
def test_what_cannot_work_on_the_data_fails_before_training(multi_split, runs_dir, monkeypatch, model_params,
                                                            strategy, fragment):
    # cross_fit=8 on 13 documents used to turn the cross-fit off silently (the run still said 8);
    # a rule that cannot work used to fail after the model had trained
    from nlpkit.errors import ConfigError
    from nlpkit.models.tfidf_lr import TfidfLogisticRegression

    model = TfidfLogisticRegression(**model_params)
    monkeypatch.setattr(model, "cross_fit", lambda *a, **k: pytest.fail("trained"))
    monkeypatch.setattr(model, "fit", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(ConfigError) as caught:
        run_experiment(model, multi_split, config={}, seed=0, rule_strategy=strategy)
    assert fragment in str(caught.value)
    assert not runs_dir.exists() or not list(runs_dir.iterdir())
