"""`nlpkit baseline`: runs recorded per model, the table / JSON, and one test per bad input."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import make_dataset
from nlpkit.cli import app

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, ["baseline", *map(str, args)])


def test_majority_and_tfidf_json(multi_split, runs_dir):
    result = invoke(multi_split.path, "--model", "majority", "--model", "tfidf-lr", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["model"] for r in rows] == ["majority", "tfidf-lr"]
    for row in rows:
        assert row["task"] == "multi" and 0 <= row["micro_f1"] <= 1
        run_json = json.loads((runs_dir / row["run"].split("/")[-1] / "run.json").read_text())
        assert run_json["kind"] == "baseline" and run_json["config"]["command"] == "baseline"
    # the label "never" occurs in test only: reported, scored as a miss, not a crash
    assert "never in train" in result.stderr


def test_table_lists_every_default_model(single_split, runs_dir):
    result = invoke(single_split.path, "--seed", "3")
    assert result.exit_code == 0, result.output
    for name in ("majority", "tfidf-lr", "fasttext", "word2vec"):
        assert name in result.stdout
    assert "accuracy" in result.stdout and "macro-F1" in result.stdout
    runs = sorted(p for p in runs_dir.iterdir() if not p.name.startswith("."))
    assert len(runs) == 4
    assert {json.loads((p / "run.json").read_text())["seed"] for p in runs} == {3}
    # fastText's choice among its two recipes and their average, made on valid, is shown under the table
    fasttext = next(json.loads((p / "run.json").read_text()) for p in runs if "fasttext" in p.name)
    chosen = fasttext["fit_info"]["settings_choice"]["chosen"]
    assert f"fasttext chose {chosen} (valid accuracy " in result.stdout


def test_choices_name_each_model_choice_and_its_scores():
    from nlpkit.baseline import choices

    tfidf = {"ngram_choice": {"metric": "out-of-fold micro_f1", "reference": [1, 2], "chosen": [1, 1],
                              "out_of_fold": {"1-2": 0.8944, "1-1": 0.9069}}}
    fasttext = {"settings_choice": {"metric": "micro_f1", "chosen": "word_ngrams=2",
                                    "valid": {"word_ngrams=2": 0.8529, "word_ngrams=1, max_df=0.1": 0.8473}},
                "autotune": {"metric": "micro_f1", "kept": "defaults", "valid": {"defaults": 0.871, "autotune": 0.784}}}
    assert choices({"model": "tfidf-lr", "fit_info": tfidf}) == [
        ("word unigrams", "out-of-fold micro_f1 0.907 against 0.894 for 1-2-grams")]
    assert choices({"model": "fasttext", "fit_info": fasttext}) == [
        ("word_ngrams=2", "valid micro_f1 0.853 against 0.847 for word_ngrams=1, max_df=0.1"),
        ("the default options over autotune's model", "valid micro_f1 0.871 against 0.784")]
    fasttext["autotune"]["kept"] = "autotune"
    assert choices({"model": "fasttext", "fit_info": fasttext})[1] == ("autotune's model over the default options",
                                                  "valid micro_f1 0.784 against 0.871")
    averaged = {"average": {"metric": "micro_f1", "valid": {"word_ngrams=2": 0.85, "word_ngrams=1, max_df=0.1": 0.87,
                                                             "their average": 0.881}}, "settings_choice": None}
    assert choices({"model": "fasttext", "fit_info": averaged}) == [
        ("the average of word_ngrams=2 and word_ngrams=1, max_df=0.1", "valid micro_f1 0.881; each alone 0.850, 0.870")]
    # nothing chosen (fixed options, no valid part, or a family without choices): nothing said
    assert choices({"model": "fasttext", "fit_info": {"settings_choice": None, "autotune": None}}) == choices({}) == []
    assert choices({"model": "majority", "fit_info": {"majority_label": "a"}}) == []
    # autotune that failed has no scores: its warning says so instead
    assert choices({"model": "fasttext", "fit_info": {"autotune": {"kept": "defaults", "error": "Encountered NaN."}}}) == []


def test_choices_say_why_a_reference_is_kept_against_a_higher_score():
    # The one-standard-error rule: the reference stays unless another option is clearly better.
    # The line used to read as if the lower score had won.
    from nlpkit.baseline import choices

    kept = "; kept as the reference: that lead is within about one standard error"
    fasttext = {"settings_choice": {"metric": "accuracy", "chosen": "word_ngrams=2", "reference": "word_ngrams=2",
                                    "valid": {"word_ngrams=2": 0.765, "word_ngrams=1, max_df=0.1": 0.780}},
                "autotune": {"metric": "accuracy", "kept": "defaults", "valid": {"defaults": 0.765, "autotune": 0.77}}}
    assert choices({"model": "fasttext", "fit_info": fasttext}) == [
        ("word_ngrams=2", "valid accuracy 0.765 against 0.780 for word_ngrams=1, max_df=0.1" + kept),
        ("the default options over autotune's model", "valid accuracy 0.765 against 0.770" + kept)]
    tfidf = {"ngram_choice": {"metric": "out-of-fold accuracy", "reference": [1, 2], "chosen": [1, 2],
                              "out_of_fold": {"1-2": 0.830, "1-1": 0.831}}}
    assert choices({"model": "tfidf-lr", "fit_info": tfidf}) == [("word 1-2-grams", "out-of-fold accuracy 0.830 against 0.831 for unigrams"
                                             + kept)]


def test_choices_show_what_tfidf_tuning_chose():
    from nlpkit.baseline import choices

    tuned = {"C": 30.0, "ngram_range": [1, 2], "tuning": {
        "selected_by": "3-fold cross-fit on train + valid", "metric": "out-of-fold accuracy",
        "results": [{"C": 10.0, "ngram_range": [1, 2], "score": 0.80}, {"C": 30.0, "ngram_range": [1, 2], "score": 0.85},
                    {"C": 30.0, "ngram_range": [1, 1], "score": 0.81}]}}
    assert choices({"model": "tfidf-lr", "fit_info": tuned}) == [(
        "C=30 with word 1-2-grams", "3-fold cross-fit on train + valid, out-of-fold accuracy 0.850 against 0.800 for "
                                    "C=10 with word 1-2-grams, 0.810 for C=30 with word unigrams")]


def test_tune_prints_tfidf_choice_under_the_table(single_split, runs_dir):
    result = invoke(single_split.path, "-m", "tfidf-lr", "--tune", "--set", "tfidf-lr.grid_C=1,10")
    assert result.exit_code == 0, result.output
    info = json.loads(next(p for p in runs_dir.iterdir() if not p.name.startswith(".")).joinpath("run.json")
                      .read_text())["fit_info"]
    grams = "unigrams" if info["ngram_range"] == [1, 1] else "1-2-grams"
    assert f"tfidf-lr chose C={info['C']:g} with word {grams} (3-fold cross-fit on train + valid, " in result.stdout


def test_large_data_is_not_cross_fitted_and_the_table_says_so(multi_split, runs_dir):
    # cross_fit_max_docs stands in for 50,000 documents here: over it, tfidf-lr fits on train and
    # tunes its rule on valid, as every other model does, and says so under the table
    # (the fixture's texts are short: the n-gram choice is asked for by name)
    result = invoke(multi_split.path, "-m", "tfidf-lr", "--set", "tfidf-lr.cross_fit_max_docs=10",
                    "--set", "tfidf-lr.choose_ngrams=true")
    assert result.exit_code == 0, result.output
    run = json.loads(next(p for p in runs_dir.iterdir() if not p.name.startswith(".")).joinpath("run.json")
                     .read_text())
    n_docs = run["data"]["n_train"] + run["data"]["n_valid"]
    assert "cross_fit" not in run["config"]
    assert run["fit_info"]["cross_fit"] == {"folds": 0, "documents": n_docs, "labels": len(multi_split.label_names),
                                            "max_documents": 10, "max_label_documents": 2_000_000}
    choice = run["fit_info"]["ngram_choice"]  # made on valid instead of out-of-fold
    assert choice["metric"] == "valid micro_f1" and set(choice["valid"]) == {"1-2", "1-1"}
    assert run["fit_info"]["ngram_range"] == choice["chosen"]
    grams = "unigrams" if choice["chosen"] == [1, 1] else "1-2-grams"
    assert f"tfidf-lr chose word {grams} (valid micro_f1 " in result.stdout
    assert (f"tfidf-lr chose no cross-fit ({n_docs:,} documents in train + valid, over cross_fit_max_docs=10: "
            "fitted on train, rule tuned on valid)") in " ".join(result.stdout.split())
    below = invoke(multi_split.path, "-m", "tfidf-lr", "--set", f"tfidf-lr.cross_fit_max_docs={n_docs}")
    assert below.exit_code == 0, below.output
    assert "no cross-fit" not in below.stdout


def test_many_labels_are_not_cross_fitted_and_the_table_says_so(multi_split, runs_dir):
    # cross_fit_max_label_docs stands in for 2,000,000 documents x labels (cooking tags: 12,404 x 736)
    n_labels = len(multi_split.label_names)
    n_docs = len(multi_split.train) + len(multi_split.valid)
    result = invoke(multi_split.path, "-m", "tfidf-lr", "--set",
                    f"tfidf-lr.cross_fit_max_label_docs={n_docs * n_labels - 1}", "--set", "tfidf-lr.choose_ngrams=true")
    assert result.exit_code == 0, result.output
    run = json.loads(next(p for p in runs_dir.iterdir() if not p.name.startswith(".")).joinpath("run.json")
                     .read_text())
    assert "cross_fit" not in run["config"] and run["fit_info"]["cross_fit"]["folds"] == 0
    assert run["fit_info"]["ngram_choice"]["metric"] == "valid micro_f1"
    assert (f"tfidf-lr chose no cross-fit ({n_docs:,} documents x {n_labels:,} labels in train + valid, over "
            f"cross_fit_max_label_docs={n_docs * n_labels - 1:,}: fitted on train, rule tuned on valid)"
            ) in " ".join(result.stdout.split())
    for path in runs_dir.iterdir():
        shutil.rmtree(path)
    at_limit = invoke(multi_split.path, "-m", "tfidf-lr", "--set", f"tfidf-lr.cross_fit_max_label_docs={n_docs * n_labels}")
    assert at_limit.exit_code == 0, at_limit.output
    assert "no cross-fit" not in at_limit.stdout


def test_a_model_failing_after_others_says_which_runs_are_kept(make_split, runs_dir):
    # word2vec finds no word in texts made of emoji; the runs already complete stay, and are named
    emoji = ["\U0001F600", "\U0001F389", "\U0001F525", "\U0001F44D"]
    texts = [" ".join(emoji[(i + k) % 2 + 2 * (i % 2)] for k in range(4)) for i in range(24)]
    labels = ["even" if i % 2 == 0 else "odd" for i in range(24)]
    parts = {name: make_dataset(texts[lo:hi], labels[lo:hi], ids=[f"{name}{i}" for i in range(lo, hi)])
             for name, lo, hi in (("train", 0, 16), ("valid", 16, 20), ("test", 20, 24))}
    result = invoke(make_split(parts, "emoji").path, "-m", "majority", "-m", "word2vec")
    assert result.exit_code == 1, result.output
    kept = [p.name for p in runs_dir.iterdir() if not p.name.startswith(".")]
    assert len(kept) == 1 and "majority" in kept[0]
    lines = result.stderr.splitlines()
    assert lines[-2] == f"Kept the 1 run(s) completed before this: {kept[0]} (in {runs_dir})."
    assert lines[-1].startswith("Error: word2vec: every training text is empty after tokenisation")


def test_piped_table_keeps_each_row_on_one_line(multi_split, runs_dir, monkeypatch):
    # rich assumes 80 columns when stdout is not a terminal and would wrap the run names
    from nlpkit.cli import _common

    monkeypatch.setattr(_common, "_out_console", None)
    monkeypatch.setenv("COLUMNS", "80")
    result = invoke(multi_split.path, "-m", "majority")
    assert result.exit_code == 0, result.output
    run = next(p.name for p in runs_dir.iterdir() if not p.name.startswith("."))
    assert any("majority" in line and run in line for line in result.stdout.splitlines()), result.stdout


@pytest.fixture
def kfold_split(make_split, data_dir):
    from nlpkit.data import read_dataset

    ds = read_dataset(data_dir / "agnews_sample.jsonl")
    idx = np.arange(600)
    return make_split({f"fold{k}": ds.subset(idx[k::3]) for k in range(3)}, "kfold")


def test_kfold_split_runs_every_fold_and_reports_mean_and_spread(kfold_split, runs_dir):
    result = invoke(kfold_split.path, "-m", "majority", "-m", "tfidf-lr", "--json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(r["model"], r["fold"]) for r in rows] == [(m, k) for k in range(3) for m in ("majority", "tfidf-lr")]
    for r in rows:  # fold k is the test part of its runs
        data = json.loads((Path(r["run"]) / "run.json").read_text())["data"]
        assert data["fold"] == r["fold"] and data["n_test"] == 200
    from nlpkit.baseline import cross_validation_summary

    summary = {s["model"]: s for s in cross_validation_summary(rows)}
    tfidf = [r["accuracy"] for r in rows if r["model"] == "tfidf-lr"]
    assert summary["tfidf-lr"]["per_fold"] == tfidf and summary["tfidf-lr"]["mean"] == pytest.approx(np.mean(tfidf))
    assert summary["tfidf-lr"]["sd"] == pytest.approx(np.std(tfidf, ddof=1))
    table = invoke(kfold_split.path, "-m", "majority", "-m", "tfidf-lr")
    assert table.exit_code == 0, table.output
    assert "3-fold cross-validation" in table.stdout and "±" in table.stdout
    # how often each n-gram choice was made (or its reference kept: AG News texts are short), over the folds
    chosen = Counter("unigrams" if r["fit_info"]["ngram_range"] == [1, 1] else "1-2-grams"
                     for r in rows if r["model"] == "tfidf-lr")
    for name, n in chosen.items():
        assert f"tfidf-lr chose word {name} on {n} of 3 folds" in table.stdout


def test_kfold_fold_option_runs_one_fold_and_report_compares_that_fold(kfold_split, runs_dir, tmp_path):
    result = invoke(kfold_split.path, "-m", "majority", "-m", "tfidf-lr", "--fold", "1", "--json")
    assert result.exit_code == 0, result.output
    assert {r["fold"] for r in json.loads(result.stdout)} == {1}
    assert invoke(kfold_split.path, "-m", "majority", "--fold", "2").exit_code == 0  # another fold, not compared
    report = runner.invoke(app, ["report", str(kfold_split.path), "--fold", "1", "--format", "json",
                                 "--out", str(tmp_path / "r"), "--n-boot", "50", "--n-perm", "50"])
    assert report.exit_code == 0, report.output
    body = json.loads(report.stdout)
    assert body["split"]["fold"] == 1 and body["split"]["n_test"] == 200
    assert sorted(r["name"].split("-", 2)[2].rsplit("-", 1)[0] for r in body["rows"]) == ["majority", "tfidf-lr"]
    whole = runner.invoke(app, ["report", str(kfold_split.path)])  # cross-validation: fold 0 has no run
    assert whole.exit_code == 1 and "no model has a run on every fold" in whole.stderr


@pytest.mark.parametrize("fold, fragment", [("3", "--fold 3 is out of range"), ("-1", "--fold -1 is out of range")])
def test_kfold_bad_fold_is_a_one_line_error(kfold_split, runs_dir, fold, fragment):
    result = invoke(kfold_split.path, "-m", "majority", "--fold", fold)
    assert result.exit_code == 1 and fragment in result.stderr and "Traceback" not in result.output
    assert not runs_dir.exists() or not any(p for p in runs_dir.iterdir() if not p.name.startswith("."))


def test_fold_option_on_a_plain_split_is_an_error(single_split, runs_dir):
    result = invoke(single_split.path, "-m", "majority", "--fold", "0")
    assert result.exit_code == 1 and "--fold applies to a k-fold split" in result.stderr


def test_rule_option_reaches_the_run(multi_split, runs_dir):
    result = invoke(multi_split.path, "-m", "tfidf-lr", "--rule", "global", "--json")
    assert result.exit_code == 0, result.output
    run_json = json.loads((runs_dir / json.loads(result.stdout)[0]["run"].split("/")[-1] / "run.json").read_text())
    assert run_json["rule"]["type"] == "global_threshold" and run_json["config"]["rule_strategy"] == "global"


def test_tune_records_the_choice(single_split, runs_dir):
    result = invoke(single_split.path, "-m", "tfidf-lr", "--tune", "--cv", "2", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)[0]["fit_info"]
    assert info["tuning"]["selected_by"] == "2-fold cross-fit on train + valid" and "C" in info


def test_set_passes_model_parameters_and_records_them(single_split, runs_dir):
    from nlpkit.runs import load_run

    result = invoke(single_split.path, "-m", "tfidf-lr", "-m", "fasttext", "--set", "tfidf-lr.char_ngrams=2,4",
                    "--set", "tfidf-lr.C=30", "--set", "fasttext.dim=7", "--set", "fasttext.word_ngrams=2",
                    "--set", "fasttext.max_df=none", "--json")
    assert result.exit_code == 0, result.output
    rows = {r["model"]: r for r in json.loads(result.stdout)}
    tfidf, fasttext = (load_run(rows[m]["run"]) for m in ("tfidf-lr", "fasttext"))
    assert tfidf.info["model_params"]["char_ngrams"] == [2, 4] and tfidf.info["model_params"]["C"] == 30
    assert tfidf.info["config"]["set"]["tfidf-lr"] == {"char_ngrams": [2, 4], "C": 30}
    assert rows["fasttext"]["fit_info"]["dim"] == 7
    assert fasttext.info["model_params"]["word_ngrams"] == 2 and fasttext.info["model_params"]["max_df"] is None
    assert rows["fasttext"]["fit_info"]["settings_choice"] is None  # one setting: nothing to choose


@pytest.mark.parametrize("text, expected", [
    ("tfidf-lr.C=30", ("tfidf-lr", "C", 30)),
    ("tfidf-lr.C=0.5", ("tfidf-lr", "C", 0.5)),
    ("tfidf-lr.ngram_range=1,3", ("tfidf-lr", "ngram_range", (1, 3))),
    ("tfidf-lr.ngram_range=[1, 3]", ("tfidf-lr", "ngram_range", (1, 3))),
    ("tfidf-lr.class_weight=none", ("tfidf-lr", "class_weight", None)),
    ("tfidf-lr.sublinear_tf=false", ("tfidf-lr", "sublinear_tf", False)),
    ("fasttext.loss=ova", ("fasttext", "loss", "ova")),
])
def test_set_values_are_read_as_json_tuples_or_strings(text, expected):
    from nlpkit.baseline import parse_setting

    assert parse_setting(text, ["tfidf-lr", "fasttext"]) == expected


def test_single_class_training_data_warns_and_predicts_it(make_split):
    texts = ["red apple", "green apple", "apple pie", "apple tart", "apple jam", "baked apple"]
    train = make_dataset(texts, ["fruit"] * 6, task="single", label_names=["fruit", "veg"])
    valid = make_dataset(["apple cake"], ["fruit"], task="single", label_names=["fruit", "veg"])
    test = make_dataset(["apple crumble", "carrot soup"], ["fruit", "veg"], task="single", label_names=["fruit", "veg"])
    split = make_split({"train": train, "valid": valid, "test": test}, "one_class")
    result = invoke(split.path, "-m", "tfidf-lr", "--json")
    assert result.exit_code == 0, result.output
    assert "always predicts" in result.stderr
    assert json.loads(result.stdout)[0]["accuracy"] == pytest.approx(0.5)


def test_texts_without_words_word2vec_is_a_clear_error(make_split):
    train = make_dataset(["!!!", "???", "...", "!?"], ["a", "b", "a", "b"], task="single")
    split = make_split({"train": train, "valid": train, "test": train}, "no_words")
    result = invoke(split.path, "-m", "word2vec")
    assert result.exit_code == 1
    assert "Error: word2vec: every training text is empty after tokenisation" in result.stderr
    assert "Traceback" not in result.output


def test_pretrained_vectors(single_split, tmp_path):
    words = ["apple", "banana", "engine", "piston", "football", "goal"]
    rng = np.random.default_rng(0)
    path = tmp_path / "vectors.txt"
    path.write_text(f"{len(words)} 3\n" + "".join(f"{w} {' '.join(map(str, rng.normal(size=3).round(3)))}\n" for w in words))
    result = invoke(single_split.path, "-m", "word2vec", "--vectors", path, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["fit_info"]["dim"] == 3


# --- bad input: one line on stderr, exit 1, nothing recorded -------------------------------------

def _no_train_split(make_split, single_parts):
    split = make_split(single_parts, "no_train")
    manifest = json.loads((split.path / "split.json").read_text())
    del manifest["parts"]["train"]
    (split.path / "split.json").write_text(json.dumps(manifest))
    (split.path / "train.jsonl").unlink()
    return split.path


@pytest.mark.parametrize("case, args, message", [
    ("no-train", [], "has no train part"),
    ("missing", [], "split folder not found"),
    ("ok", ["-m", "transformer"], "unknown baseline model transformer (fine-tune transformers with `nlpkit finetune`)"),
    ("ok", ["-m", "svm"], "unknown baseline model svm"),
    ("ok", ["--cv", "3"], "--cv only applies to --tune"),
    ("ok", ["--tune", "--cv", "1"], "--cv must be at least 2 folds"),
    ("ok", ["--tune-seconds", "5"], "--tune-seconds only applies to --tune"),
    ("ok", ["--tune", "-m", "majority"], "--tune applies to tfidf-lr and fasttext"),
    ("ok", ["-m", "tfidf-lr", "--vectors", "VEC_OK"], "--vectors is only used by the word2vec model"),
    ("ok", ["-m", "word2vec", "--vectors", "VEC_MISSING"], "vectors file not found"),
    ("ok", ["-m", "word2vec", "--vectors", "VEC_JUNK"], "is not a word-vector file nlpkit can read"),
    ("ok", ["-m", "word2vec", "--vectors", "VEC_PICKLE"], "is a pickled gensim file"),
    ("ok", ["-m", "word2vec", "--vectors", "VEC_RAGGED"], "check that every row has 3 numbers"),
    ("ok", ["--rule", "best"], "unknown --rule 'best'"),
    ("ok", ["--set", "tfidf-lr.C"], "expected MODEL.KEY=VALUE"),
    ("ok", ["--set", "svm.C=1"], "unknown baseline model 'svm'"),
    ("ok", ["-m", "tfidf-lr", "--set", "fasttext.dim=3"], "fasttext is not among the models to train"),
    ("ok", ["--set", "tfidf-lr.seed=3"], "seed has its own option; use --seed"),
    ("ok", ["--set", "tfidf-lr.Cx=3"], "tfidf-lr has no parameter 'Cx'; it has C, char_ngrams"),
    ("ok", ["--set", "tfidf-lr.C=-1"], "--set tfidf-lr.C=-1: tfidf-lr's C must be a number > 0; got -1."),
    ("ok", ["--set", "fasttext.loss=hinge"],
     "--set fasttext.loss=hinge: fasttext's loss must be one of 'auto', 'softmax', 'ova', 'hs', 'ns'; got 'hinge'."),
    ("ok", ["--set", "fasttext.max_df=2"], "fasttext's max_df must be 'auto', none or a share of documents in (0, 1]; got 2."),
    ("ok", ["--set", "fasttext.init_norm=0"], "fasttext's init_norm must be 'auto', none or a vector length in (0, 100]; got 0."),
    ("ok", ["-m", "majority", "--rule", "global"], "--rule global is for multi-label data"),
    # every --set value is checked before the first model trains (majority runs first by default):
    # these raised a bare ValueError, failed later with a misleading message, or were taken
    ("ok", ["--set", "tfidf-lr.C=abc"], "--set tfidf-lr.C=abc: tfidf-lr's C must be a number > 0; got 'abc'."),
    ("ok", ["--set", "tfidf-lr.min_df=abc"], "tfidf-lr's min_df must be a whole number >= 1; got 'abc'."),
    ("ok", ["--set", "tfidf-lr.max_iter=abc"], "tfidf-lr's max_iter must be a whole number >= 1; got 'abc'."),
    ("ok", ["--set", "tfidf-lr.grid_C=a,b"], "--set tfidf-lr.grid_C=a,b: tfidf-lr's grid_C must be one or more "
                                             "numbers > 0 (e.g. 10,30,100); got 'a','b'."),
    ("ok", ["--set", "tfidf-lr.max_features=abc"], "max_features must be none or a whole number >= 1; got 'abc'."),
    ("ok", ["--set", "tfidf-lr.max_features=-5"], "max_features must be none or a whole number >= 1; got -5."),
    ("ok", ["--set", "tfidf-lr.max_df=2.5"], "tfidf-lr's max_df must be a share of documents in (0, 1]; got 2.5."),
    ("ok", ["--set", "tfidf-lr.max_df=abc"], "tfidf-lr's max_df must be a share of documents in (0, 1]; got 'abc'."),
    ("ok", ["--set", "tfidf-lr.sublinear_tf=maybe"], "tfidf-lr's sublinear_tf must be true or false; got 'maybe'."),
    ("ok", ["--set", "tfidf-lr.min_df=-1"], "tfidf-lr's min_df must be a whole number >= 1; got -1."),
    ("ok", ["--set", "tfidf-lr.max_iter=0"], "tfidf-lr's max_iter must be a whole number >= 1; got 0."),
    ("ok", ["--set", "tfidf-lr.C=1e400"], "tfidf-lr's C must be a number > 0; got inf."),
    ("ok", ["--set", "fasttext.dim=abc"], "--set fasttext.dim=abc: fasttext's dim must be a whole number from 1 to "),
    ("ok", ["--set", "word2vec.window=0"], "--set word2vec.window=0: word2vec's window must be a whole number >= 1"),
    # the single split has 15 documents in train + valid: 8 folds would silently turn the cross-fit off
    ("ok", ["--set", "tfidf-lr.cross_fit=8"], "tfidf-lr: cross_fit=8 folds need at least 16 documents in train + "
                                              "valid (two per fold), and there are 15"),
    ("ok", ["--tune", "--cv", "8"], "tfidf-lr: cv=8 folds need at least 16 documents"),
    ("ok", ["--seed", "-1"], "--seed must be a whole number from 0 to 2147483647; got -1."),
    ("ok", ["-m", "majority", "--seed", "2147483648"], "--seed must be a whole number from 0 to 2147483647"),
    ("ok", ["--tune", "--tune-seconds", "0.4"], "--tune-seconds must be at least 1"),
    ("ok", ["--rule", "top-3"], "unknown --rule 'top-3': topK is written without a hyphen, top3."),
    ("ok", ["--rule", "top0"], "--rule top0: K must be at least 1"),
    ("ok", ["--rule", "top1"], "--rule top1 is for multi-label data; "),
    ("multi", ["--rule", "argmax"], "--rule argmax is for single-label data; "),
    ("multi", ["--rule", "top4"], "--rule top4 would predict every one of the 4 labels of "),
    ("multi", ["--rule", "top999"], "--rule top999 would predict every one of the 4 labels of "),
])
def test_bad_input(case, args, message, make_split, single_parts, single_split, multi_split, tmp_path, runs_dir):
    vec_files = {
        "VEC_OK": "2 3\napple 1 2 3\nbanana 3 2 1\n",
        "VEC_JUNK": "hello world\nnot vectors\n",
        "VEC_RAGGED": "2 3\napple 1 2 3\nbanana 3 2\n",
    }
    resolved = []
    for a in args:
        if a == "VEC_PICKLE":
            (tmp_path / "v.kv").write_bytes(b"\x80\x04\x95gensim")
            a = tmp_path / "v.kv"
        elif a == "VEC_MISSING":
            a = tmp_path / "nope.bin"
        elif a in vec_files:
            (tmp_path / f"{a}.txt").write_text(vec_files[a])
            a = tmp_path / f"{a}.txt"
        resolved.append(a)
    split_dir = {"no-train": lambda: _no_train_split(make_split, single_parts),
                 "missing": lambda: tmp_path / "nowhere",
                 "ok": lambda: single_split.path,
                 "multi": lambda: multi_split.path}[case]()
    result = invoke(split_dir, *resolved)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    assert message.lower() in result.stderr.lower()
    assert "Traceback" not in result.output
    assert not runs_dir.exists() or not [p for p in runs_dir.iterdir() if not p.name.startswith(".")]


def test_bench_skips_without_shared_data(monkeypatch, tmp_path, capsys):
    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("baseline_bench", REPO / "bench" / "baseline_bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr(bench, "DATA", tmp_path / "absent")
    assert bench.main([]) == 0
    assert "skipped" in capsys.readouterr().out


def test_bench_single_topic_reuters_sets(monkeypatch, tmp_path):
    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("baseline_bench", REPO / "bench" / "baseline_bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr(bench, "DATA", tmp_path)
    (tmp_path / "reuters21578").mkdir()
    rows = {"train": [["earn"], ["acq"], ["earn", "acq"], ["zinc"], ["ship"], ["tin"]],
            "test": [["earn"], ["acq", "ship"], ["zinc"], ["gold"], ["ship"]]}
    for part, labels in rows.items():
        with open(tmp_path / "reuters21578" / f"{part}.jsonl", "w") as fh:
            for i, lab in enumerate(labels):
                fh.write(json.dumps({"id": f"{part}{i}", "text": f"text {i} {' '.join(lab)}", "labels": lab}) + "\n")
    r8 = bench._single_topic_reuters("r8")
    assert [p.ids for p in r8] == [["train0", "train1", "train4"], ["test0", "test4"]]
    assert r8[0].label_names == ["acq", "earn", "ship"] and {p.task for p in r8} == {"single"}
    r52 = bench._single_topic_reuters("r52")  # one topic, seen in train and in test
    assert [p.ids for p in r52] == [["train0", "train3", "train4"], ["test0", "test2", "test4"]]
    assert r52[0].label_names == ["earn", "ship", "zinc"]
    assert r52[1].y.toarray().tolist() == [[1, 0, 0], [0, 0, 1], [0, 1, 0]]


def test_bench_runs_a_model_with_tune_under_its_own_name(single_split, tmp_path):
    import importlib.util

    from conftest import REPO
    from nlpkit.runs import load_run

    spec = importlib.util.spec_from_file_location("baseline_bench", REPO / "bench" / "baseline_bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = [bench.run_nlpkit(single_split, name, tmp_path / "runs", seed=0) for name in ("tfidf-lr", "tfidf-lr+tune")]
    assert [r["model"] for r in rows] == ["tfidf-lr", "tfidf-lr+tune"]
    assert [load_run(r["run"]).info["config"]["tune"] for r in rows] == [False, True]


@pytest.mark.parametrize("peer", ["peer-tfidf-lr", "peer-fasttext"])
def test_bench_runs_the_peer_recipes(single_split, peer):
    """The peers run on a tiny split (a removed helper once broke the peer fastText unnoticed)."""
    import importlib.util

    from conftest import REPO

    spec = importlib.util.spec_from_file_location("baseline_bench", REPO / "bench" / "baseline_bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    row = bench.run_peer(single_split, peer)
    assert row["model"] == peer and 0.0 <= row["accuracy"] <= 1.0


@pytest.mark.slow
def test_scale_bench_runs_end_to_end_on_a_small_corpus(tmp_path):
    """bench/scale_bench.py on 400 documents: every step runs and the JSON has a row per step (the
    figures themselves are in docs/benchmarks.md; a bench left untested once broke unnoticed)."""
    import subprocess
    import sys

    from conftest import REPO

    out = tmp_path / "scale.json"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "scale_bench.py"), "--docs", "400", "--labels", "8",
                           "--models", "majority,tfidf-lr", "--coefficient-rows", "2000", "--work", str(tmp_path / "work"),
                           "--json", str(out)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    rows = json.loads(out.read_text())["rows"]
    assert [r["step"] for r in rows] == ["split", "baseline -m majority", "baseline -m tfidf-lr",
                                         "baseline -m tfidf-lr, cross-fit", "report"]
    assert all(r["wall_s"] > 0 and r["peak_rss_mb"] > 0 for r in rows)
    assert "the cross-fit takes" in proc.stdout
    assert "peak ratio scipy / nlpkit" in proc.stdout and "scoring 3,019 x 15,164" in proc.stdout
    assert len([p for p in (tmp_path / "work" / "runs").iterdir() if not p.name.startswith(".")]) == 3


def test_bench_model_seeds_and_settings(single_split, tmp_path, monkeypatch, capsys):
    """--model-seeds runs each nlpkit model once per seed on the same split; --set reaches only its model."""
    import importlib.util

    from conftest import REPO
    from nlpkit.runs import load_run

    spec = importlib.util.spec_from_file_location("baseline_bench", REPO / "bench" / "baseline_bench.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    row = bench.run_nlpkit(single_split, "fasttext", tmp_path / "runs", seed=3,
                           settings=["fasttext.init_norm=none", "fasttext.dim=8", "tfidf-lr.C=3"])
    info = load_run(row["run"]).info
    assert info["config"]["seed"] == 3
    assert info["model_params"]["init_norm"] is None and info["model_params"]["dim"] == 8
    assert info["config"]["set"] == {"fasttext": {"init_norm": None, "dim": 8}}

    monkeypatch.setattr(bench, "DATA", tmp_path)  # present: the splits come from build_splits below
    splits_seen = []
    monkeypatch.setattr(bench, "build_splits", lambda root, datasets, seed: splits_seen.append(seed) or {"tiny": [single_split]})
    real, seeds_run = bench.run_nlpkit, []
    monkeypatch.setattr(bench, "run_nlpkit", lambda split, model, root, seed, settings: seeds_run.append(seed)
                        or real(split, model, root, seed, settings))
    out = tmp_path / "rows.json"
    assert bench.main(["--datasets", "tiny", "--models", "majority", "--seed", "5", "--model-seeds", "1,2",
                       "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert splits_seen == [5] and seeds_run == [1, 2] and [r["model_seed"] for r in rows] == [1, 2]
    assert "tiny     majority       accuracy by model seed: 1 " in capsys.readouterr().out
