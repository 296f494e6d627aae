"""The baseline model families (tfidf-lr, fasttext, word2vec) on tiny and bundled data.

The shared contract (fit/predict/save/load/seeded refits) is in test_contract.py; here: the
behaviours specific to these families, edge cases of the input, and a sanity check of quality on
the bundled samples (each model must beat the label priors on held-out documents).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
import platform

import numpy as np
import pytest

from conftest import make_dataset
from nlpkit.data import read_dataset
from nlpkit.errors import ConfigError, DataError, NlpkitError
from nlpkit.models import fasttext_clf, fasttext_process, load_model
from nlpkit.models.base import ParamError
from nlpkit.models.fasttext_clf import LABELS_JSON, FastTextClassifier, epochs_for
from nlpkit.text import LEGACY_TEXT_RULE, TEXT_RULE, normalize, tfidf_terms, tokenize
from nlpkit.models.tfidf_lr import TfidfLogisticRegression
from nlpkit.models.word2vec import Word2VecClassifier, load_vectors, sniff_vectors_format, stable_hash

FAST = {
    "tfidf-lr": lambda **kw: TfidfLogisticRegression(**kw),
    # unigrams: their input matrix is small enough to come from reused heap memory, where
    # fasttext-numpy2's uncleared rows made 5 of these tests fail before _ZEROED_MALLOC
    # (word_ngrams="auto" is tested on the bundled samples below)
    "fasttext": lambda **kw: FastTextClassifier(dim=8, epoch=5, word_ngrams=1, max_df=None, **kw),
    "word2vec": lambda **kw: Word2VecClassifier(vector_size=8, epochs=5, **kw),
}
FAMILIES = ["tfidf-lr", pytest.param("fasttext"), pytest.param("word2vec")]


# --- text normalisation -------------------------------------------------------------------------

def test_normalize_splits_punctuation_lowercases_and_joins_lines():
    assert normalize("Hello, World!\nNew  line.") == "hello , world ! new line ."
    assert "\n" not in normalize("a\r\nb\tc")
    assert normalize("   ") == ""


def test_tokenize_keeps_words_only():
    assert tokenize("It's 5 o'clock, Zoë!") == ["it", "s", "5", "o", "clock", "zoë"]


def test_words_keep_their_combining_marks():
    # Python's re cuts these at the marks: "नमस्ते" -> "नमस", "त"
    assert tokenize("नमस्ते दुनिया, தமிழ்!") == ["नमस्ते", "दुनिया", "தமிழ்"]
    assert normalize("नमस्ते, दुनिया") == "नमस्ते , दुनिया"
    assert tfidf_terms("नमस्ते दुनिया") == ["नमस्ते", "दुनिया"]


def test_scripts_without_spaces_give_one_token_per_character():
    assert tokenize("我喜欢吃苹果。コンピューター") == ["我", "喜", "欢", "吃", "苹", "果", "コ", "ン", "ピ", "ュ", "ー", "タ", "ー"]
    # a Thai character keeps its vowel and tone marks; CJK punctuation stays punctuation
    assert tokenize("สวัสดี") == ["ส", "วั", "ส", "ดี"]
    assert normalize("北京，Hello世界") == "北 京 ， hello 世 界"
    assert tfidf_terms("ok 北京 a b") == ["ok", "北", "京"]


def test_tfidf_terms_match_scikit_learns_default_pattern_on_latin_text():
    import re

    texts = ["It's 5 o'clock, Zoë! a_b x2 I am", "naïve café l'été -- 3.5%", "plain ascii text\nnew line"]
    default = re.compile(r"(?u)\b\w\w+\b")
    for text in texts:
        assert tfidf_terms(text.lower()) == default.findall(text.lower())


def _chinese_topics(n, seed):
    """Chinese documents whose topic shows only in words written without spaces between them."""
    rng = np.random.default_rng(seed)
    topics = {"sport": "足球 比赛 球队 进球 冠军 教练".split(), "money": "股票 市场 银行 利率 投资 经济".split(),
              "tech": "手机 软件 芯片 电脑 网络 程序".split()}
    filler = "我们 今天 这个 非常 已经 认为 表示 可能 没有 时候".split()
    texts, labels = [], []
    for i in range(n):
        label = sorted(topics)[i % 3]
        words = [rng.choice(topics[label]) if rng.random() < 0.3 else rng.choice(filler)
                 for _ in range(rng.integers(8, 16))]
        texts.append("".join(words) + "。")
        labels.append(label)
    return make_dataset(texts, labels)


@pytest.mark.parametrize("family", FAMILIES)
def test_chinese_text_is_learned_from_its_characters(family, tmp_path):
    # Before characters were tokens, a whole clause was one "word" and every family scored
    # about chance (1/3) on this data.
    train, test = _chinese_topics(240, seed=0), _chinese_topics(90, seed=1)
    model = FAST[family](seed=0).fit(train)
    truth = np.asarray(test.y.argmax(axis=1)).ravel()
    assert (model.predict_proba(test.texts).argmax(axis=1) == truth).mean() > 0.9
    model.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    np.testing.assert_allclose(again.predict_proba(test.texts), model.predict_proba(test.texts))


def test_legacy_text_rule_is_re_on_every_text():
    assert normalize("我们今天很好。", LEGACY_TEXT_RULE) == "我们今天很好 。"  # one clause, one token
    assert normalize("我们今天很好。") == "我 们 今 天 很 好 。"
    assert tokenize("नमस्ते", LEGACY_TEXT_RULE) == ["नमस", "त"] and tokenize("नमस्ते") == ["नमस्ते"]
    assert normalize("Plain, ASCII!", LEGACY_TEXT_RULE) == normalize("Plain, ASCII!") == "plain , ascii !"


def _without_file_records(path):
    """Make a saved model look as versions before the size/sha256 record wrote it, so that a test
    can edit its files as an earlier version would have written them."""
    from nlpkit.models.base import MODEL_JSON

    meta = json.loads((path / MODEL_JSON).read_text(encoding="utf-8"))
    del meta["files"]
    (path / MODEL_JSON).write_text(json.dumps(meta), encoding="utf-8")


def _drop_text_rule(path, family):
    """Make a saved model look as earlier versions wrote it, without its text rule."""
    from nlpkit.models.base import MODEL_JSON

    _without_file_records(path)
    state_file = path / (LABELS_JSON if family == "fasttext" else MODEL_JSON)
    state = json.loads(state_file.read_text(encoding="utf-8"))
    assert state.pop("text_rule") == TEXT_RULE
    state_file.write_text(json.dumps(state), encoding="utf-8")
    return state_file, state


@pytest.mark.parametrize("family", ["fasttext", "word2vec"])
def test_models_saved_before_the_text_rule_reload_with_re(family, tmp_path):
    # Such a model saw a Chinese clause as one word: it must see new texts the same way, not as the
    # characters the current rule gives (which it never trained on).
    train = _chinese_topics(240, seed=0)
    FAST[family](seed=0).fit(train).save(tmp_path / "m")
    assert load_model(tmp_path / "m").text_rule_ == TEXT_RULE
    state_file, state = _drop_text_rule(tmp_path / "m", family)
    old = load_model(tmp_path / "m")
    assert old.text_rule_ == LEGACY_TEXT_RULE
    clause, unknown = "足球比赛冠军教练", "zzzunseen"
    np.testing.assert_allclose(old.predict_proba([clause]), old.predict_proba([unknown]))  # one unseen word
    current = load_model(tmp_path / "m")
    current.text_rule_ = TEXT_RULE
    assert not np.allclose(current.predict_proba([clause]), current.predict_proba([unknown]))
    state["text_rule"] = "future"
    state_file.write_text(json.dumps(state), encoding="utf-8")
    with pytest.raises(NlpkitError, match="unknown text_rule 'future'.*Upgrade, or re-run the experiment"):
        load_model(tmp_path / "m")


def test_tfidf_saved_before_unicode_terms_reloads_with_the_pattern_it_was_fitted_with(tmp_path, single_parts):
    import json

    from nlpkit.models.tfidf_lr import VOCAB_JSON

    TfidfLogisticRegression(seed=0).fit(single_parts["train"]).save(tmp_path / "m")
    state = json.loads((tmp_path / "m" / VOCAB_JSON).read_text(encoding="utf-8"))
    assert state["vectorizers"][0]["params"]["tokens"] == "unicode"
    assert load_model(tmp_path / "m").vectorizers_[0].tokenizer is tfidf_terms
    del state["vectorizers"][0]["params"]["tokens"]  # as written by earlier versions
    _without_file_records(tmp_path / "m")
    (tmp_path / "m" / VOCAB_JSON).write_text(json.dumps(state), encoding="utf-8")
    old = load_model(tmp_path / "m").vectorizers_[0]
    assert old.tokenizer is None and old.token_pattern == r"(?u)\b\w\w+\b"


def test_fasttext_epochs_scale_with_data_size():
    small, large = epochs_for(1_000, 300_000, 5, 50), epochs_for(120_000, 300_000, 5, 50)
    assert small == 50 and large == 5  # capped for tiny sets, the paper's 5 on AG News' size
    assert epochs_for(10_000, 300_000, 5, 50) < small


# --- labels with no / every positive, single class ----------------------------------------------

@pytest.mark.parametrize("family", FAMILIES)
def test_label_never_in_train_scores_zero(family, multi_parts):
    model = FAST[family](seed=0).fit(multi_parts["train"], multi_parts["valid"])
    scores = model.predict_proba(multi_parts["test"].texts)
    never = multi_parts["train"].label_names.index("never")
    if family == "fasttext":  # fastText never saw the label: no output for it
        assert (scores[:, never] == 0).all()
    else:
        np.testing.assert_array_equal(scores[:, never], 0.0)


def test_tfidf_label_on_every_document_scores_one(multi_parts):
    train = multi_parts["train"]
    labels = [["a", "always"] + ([] if i % 2 else ["b"]) for i in range(len(train))]
    ds = make_dataset(train.texts, labels, task="multi", label_names=["a", "always", "b"])
    scores = TfidfLogisticRegression().fit(ds).predict_proba(["alpha", "nothing known"])
    np.testing.assert_array_equal(scores[:, 1], 1.0)
    np.testing.assert_array_equal(scores[:, 0], 1.0)


@pytest.mark.parametrize("family", FAMILIES)
def test_single_class_train_predicts_it_with_a_warning(family):
    ds = make_dataset(["red apple", "green apple", "apple pie", "apple tart"], ["fruit"] * 4,
                      task="single", label_names=["fruit", "veg"])
    model = FAST[family](seed=0).fit(ds)
    scores = model.predict_proba(["carrot soup", "apple"])
    assert scores.argmax(axis=1).tolist() == [0, 0]
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-6)
    assert any("always predicts" in w for w in model.fit_info()["warnings"])


# --- empty texts --------------------------------------------------------------------------------

@pytest.mark.parametrize("family", FAMILIES)
def test_texts_empty_after_normalisation_get_finite_scores(family, single_parts):
    model = FAST[family](seed=0).fit(single_parts["train"])
    scores = model.predict_proba(["", "   ", "!!! ???", "apple"])
    assert scores.shape == (4, single_parts["train"].n_labels)
    assert np.isfinite(scores).all()
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-6)


class _TiedModel:
    """Stands in for a fastText model: the text "unknown" ties on every known label (as one-vs-all
    models answer a text without a known word), any other text does not; label 3 is unknown to it."""

    def predict(self, lines, k, threshold):
        probs = [np.full(3, 1e-5) if line == "unknown" else np.array([0.9, 0.2, 1e-5]) for line in lines]
        return [[f"__label__{j}" for j in range(3)] for _ in lines], probs


@pytest.mark.parametrize("task", ["multi", "single"])
def test_fasttext_ties_between_every_label_go_to_the_most_frequent(task):
    model = FastTextClassifier()
    model.label_names_, model.task_, model.text_rule_ = ["a", "b", "c", "never"], task, TEXT_RULE
    model.prior_ = np.array([0.2, 0.5, 0.3, 0.0])
    scores = model._scores(_TiedModel(), ["unknown", "known"])
    assert scores[0].argmax() == 1  # "b", the most frequent
    tied = 1e-5 if task == "multi" else 1 / 3  # the scores themselves barely move
    np.testing.assert_allclose(scores[0, :3], tied, rtol=1e-3)
    assert scores[0, 3] == 0 and scores[1].argmax() == 0 and scores[1, 3] == 0


@pytest.mark.slow
def test_fasttext_text_of_unknown_words_predicts_the_most_frequent_label(reuters_parts):
    # with the default epochs, every label's score for such a text is fastText's floor (a tie)
    from nlpkit.metrics import decide, tune_rule

    parts = reuters_parts
    model = FastTextClassifier(seed=0).fit(parts["train"], parts["valid"])
    scores = model.predict_proba(["zzzq qqqz", "!!!"])
    assert scores.max() < 2e-5
    rule = tune_rule(parts["valid"].y, model.predict_proba(parts["valid"].texts), task="multi")
    assert (decide(scores, rule).nonzero()[1] == int(np.argmax(model.prior_))).all()


def test_word2vec_training_texts_without_words_is_a_clear_error():
    ds = make_dataset(["!!!", "???", "..."], ["a", "b", "a"], task="single")
    with pytest.raises(DataError, match="empty after tokenisation"):
        Word2VecClassifier(vector_size=8, epochs=1).fit(ds)


def test_tfidf_training_texts_without_words_is_a_clear_error():
    ds = make_dataset(["!", "?", "a"], ["a", "b", "a"], task="single")
    with pytest.raises(DataError, match="no word of two or more"):
        TfidfLogisticRegression().fit(ds)


def test_fasttext_training_texts_all_empty_is_a_clear_error():
    ds = make_dataset(["", "  ", "\n"], ["a", "b", "a"], task="single")
    with pytest.raises(DataError, match="empty after normalisation"):
        FastTextClassifier(dim=8, epoch=1).fit(ds)


# --- parameters ---------------------------------------------------------------------------------

@pytest.mark.parametrize("cls, params, message", [
    (TfidfLogisticRegression, {"ngram_range": (2, 1)}, "ngram_range must be two whole numbers lo,hi with 1 <= lo <= hi"),
    (TfidfLogisticRegression, {"C": 0}, "C must be a number > 0; got 0."),
    (TfidfLogisticRegression, {"cv": 1}, "cv must be 0"),
    (TfidfLogisticRegression, {"class_weight": "heavy"}, "class_weight must be"),
    (FastTextClassifier, {"loss": "hinge"}, "loss must be"),
    (FastTextClassifier, {"dim": 0}, "dim must be a whole number from 1 to 2147483647; got 0."),
    (FastTextClassifier, {"word_ngrams": 0}, "word_ngrams must be 'auto' or a whole number from 1"),
    (FastTextClassifier, {"word_ngrams": "bigrams"}, "word_ngrams must be 'auto' or a whole number from 1"),
    (FastTextClassifier, {"max_df": 0}, "max_df must be 'auto', none or a share of documents in"),
    (FastTextClassifier, {"max_df": 1.5}, "max_df must be 'auto', none or a share of documents in"),
    (FastTextClassifier, {"max_df": "often"}, "max_df must be 'auto', none or a share of documents in"),
    (FastTextClassifier, {"max_df": True}, "max_df must be 'auto', none or a share of documents in"),
    (FastTextClassifier, {"init_norm": 0}, "init_norm must be 'auto', none or a vector length in (0, 100]; got 0."),
    (Word2VecClassifier, {"pooling": "max"}, "pooling must be one of"),
])
def test_bad_parameters_rejected_up_front(cls, params, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        cls(**params)


# Every parameter of every family, each with a value of the wrong type and one out of range: all
# rejected when the model is made (they used to raise a bare ValueError, or pass and fail later
# with a misleading message, or be taken silently).
_BAD_VALUES = {
    TfidfLogisticRegression: {
        "C": ["abc", -1, 0, float("inf"), float("nan"), True], "min_df": ["abc", -1, 0, 1.5],
        "max_iter": ["abc", 0], "grid_C": [("a", "b"), (), (10.0, -1.0)], "max_features": ["abc", -5, 0],
        "max_df": [2.5, "abc", 0, 2], "sublinear_tf": ["maybe", 1], "choose_ngrams": ["yes"],
        "char_ngrams": [(5, 2), "2,5"], "tol": [0, "abc"], "cross_fit": [1, -1, "abc"], "cv": [1, -1, "abc"],
        "n_jobs": [0, -2, "all"], "seed": [-1, 2**32, "abc"], "tune": ["yes"], "ngram_range": [(0, 1), (1,)],
        "class_weight": ["heavy"],
    },
    FastTextClassifier: {
        "dim": ["abc", 0, 2**31], "epoch": [0, "abc"], "lr": ["abc", 0, float("inf")], "word_ngrams": [0, "abc"],
        "max_df": [2.5, "abc"], "init_norm": [0, -1, 101, "long", float("nan"), True], "combine": ["mean", 1, None],
        "min_count": [0, "abc"], "bucket": [0, "abc"], "minn": [-1], "maxn": [-1, "abc"],
        "loss": ["hinge"], "threads": [0], "tune": ["maybe"], "tune_seconds": [0, "abc"], "tune_metric": ["auc", 3],
        "seed": [-1, 2**31], "target_updates": [0], "min_epoch": [0], "max_epoch": [0],
    },
    Word2VecClassifier: {
        "vector_size": [0, "abc"], "window": [0], "min_count": [0], "sg": [2, "abc"], "epochs": [0, "abc"],
        "target_tokens": [0], "min_epochs": [0], "max_epochs": [0], "pooling": ["max"], "C": ["abc", 0],
        "class_weight": ["heavy"], "max_iter": [0, "abc"], "workers": [0], "seed": [-1, "abc"], "vectors": [3],
    },
}


@pytest.mark.parametrize("cls, key, value", [(cls, key, value) for cls, bad in _BAD_VALUES.items()
                                             for key, values in bad.items() for value in values])
def test_every_parameter_is_checked_when_the_model_is_made(cls, key, value):
    with pytest.raises(ParamError) as caught:
        cls(**{key: value})
    assert caught.value.key == key and str(caught.value).startswith(f"{cls.family}: {key} must be ")
    assert "\n" not in str(caught.value)


def test_every_parameter_has_a_check():
    for cls in (TfidfLogisticRegression, FastTextClassifier, Word2VecClassifier):
        assert set(cls.param_checks) == set(cls.param_defaults), cls.family


@pytest.mark.parametrize("cls, params, message", [
    (FastTextClassifier, {"min_epoch": 10, "max_epoch": 5}, "min_epoch=10 is above max_epoch=5"),
    (FastTextClassifier, {"minn": 3, "maxn": 2}, "minn=3 is above maxn=2"),
    (FastTextClassifier, {"minn": 3}, "minn=3 has no effect with maxn=0"),
    (Word2VecClassifier, {"min_epochs": 10, "max_epochs": 5}, "min_epochs=10 is above max_epochs=5"),
])
def test_parameters_that_contradict_each_other_are_rejected(cls, params, message):
    with pytest.raises(ConfigError, match=message):
        cls(**params)


def test_accepted_values_keep_their_meaning():
    # max_df=1 from --set is every document (a share), not scikit-learn's count of one document
    assert TfidfLogisticRegression(max_df=1).get_params()["max_df"] == 1.0
    assert TfidfLogisticRegression(grid_C=30).get_params()["grid_C"] == (30,)  # one C
    assert TfidfLogisticRegression(C=np.float64(3), seed=np.int64(2), max_features=None, tol=None).params["C"] == 3
    FastTextClassifier(max_df=None, word_ngrams="auto", epoch=None, tune_seconds=None, minn=2, maxn=5)
    Word2VecClassifier(epochs=None, vectors="v.txt", sg=0)


def test_tfidf_cross_fit_folds_must_fit_the_data():
    TfidfLogisticRegression(cross_fit=5).check_data("multi", 10)
    with pytest.raises(ConfigError, match=r"cross_fit=5 folds need at least 10 documents .* there are 9"):
        TfidfLogisticRegression(cross_fit=5).check_data("multi", 9)
    with pytest.raises(ConfigError, match=r"cv=6 folds need at least 12 documents .* choose fewer folds with --cv"):
        TfidfLogisticRegression(tune=True, cv=6).check_data("single", 11)
    TfidfLogisticRegression(cross_fit=0).check_data("multi", 1)


def test_tfidf_max_df_that_leaves_no_term_names_max_df(single_parts):
    with pytest.raises(ConfigError, match=r"max_df=0.01 leaves no n-gram.*raise max_df"):
        TfidfLogisticRegression(max_df=0.01, cross_fit=0).fit(single_parts["train"])


def test_tfidf_params_survive_json_round_trip_as_tuples(tmp_path, single_parts):
    model = TfidfLogisticRegression(ngram_range=[1, 1], char_ngrams=[2, 3]).fit(single_parts["train"])
    assert model.get_params()["ngram_range"] == (1, 1)
    model.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert again.get_params() == model.get_params()
    np.testing.assert_array_equal(again.predict_proba(single_parts["test"].texts),
                                  model.predict_proba(single_parts["test"].texts))


# --- tuning -------------------------------------------------------------------------------------

def test_tfidf_tune_on_valid_records_choice(multi_parts):
    model = TfidfLogisticRegression(tune=True, grid_C=(1.0, 10.0)).fit(multi_parts["train"], multi_parts["valid"])
    info = model.fit_info()
    assert info["tuning"]["selected_by"] == "validation part"
    tried = {(r["C"], tuple(r["ngram_range"])) for r in info["tuning"]["results"]}
    assert (info["C"], tuple(info["ngram_range"])) in tried and len(tried) == 3
    best = max(r["score"] for r in info["tuning"]["results"])
    chosen = [r for r in info["tuning"]["results"] if r["C"] == info["C"] and tuple(r["ngram_range"]) == tuple(info["ngram_range"])]
    assert chosen[0]["score"] == best


def test_tfidf_tune_by_cv(single_parts):
    model = TfidfLogisticRegression(tune=True, cv=2, grid_C=(1.0, 10.0)).fit(single_parts["train"])
    assert model.fit_info()["tuning"]["selected_by"] == "2-fold CV on train"


# --- saved files are safe -----------------------------------------------------------------------

@pytest.mark.parametrize("family", FAMILIES)
def test_saved_arrays_load_without_pickle(family, tmp_path, multi_parts):
    model = FAST[family](seed=0).fit(multi_parts["train"])
    model.save(tmp_path / "m")
    for npz in (tmp_path / "m").glob("*.npz"):
        with np.load(npz, allow_pickle=False) as data:
            assert all(data[k].dtype != object for k in data.files)
    for f in (tmp_path / "m").iterdir():
        assert f.read_bytes()[:1] != b"\x80", f"{f.name} looks like a pickle"


@pytest.mark.parametrize("family", FAMILIES)
def test_damaged_or_missing_state_file_is_a_clear_error(family, tmp_path, single_parts):
    model = FAST[family](seed=0).fit(single_parts["train"])
    model.save(tmp_path / "m")
    assert load_model(tmp_path / "m").fit_info() == model.fit_info()  # restored with the state
    state = sorted(f for f in (tmp_path / "m").iterdir() if f.name != "nlpkit_model.json")
    state[0].write_bytes(b"not a model file")
    with pytest.raises(NlpkitError, match=f"cannot read the {family} model in .*{state[0].name} has 16 bytes but "
                                          "was saved with .*Re-run the experiment"):
        load_model(tmp_path / "m")
    _without_file_records(tmp_path / "m")  # as saved before the record: the loader's own checks
    with pytest.raises(NlpkitError, match=f"cannot read the {family} model in .*Re-run the experiment"):
        load_model(tmp_path / "m")
    for f in state:
        f.unlink()
    with pytest.raises(NlpkitError, match=f"cannot read the {family} model"):
        load_model(tmp_path / "m")


# Each family's files cut short or emptied (a full disk, an interrupted copy): the record of sizes
# and sha256 names the file; models saved before the record still fail cleanly, naming the file,
# where numpy raised BadZipFile (truncated .npz) or EOFError (empty .npz; the CLI printed a bare
# "Aborted."), and fastText MemoryError (std::bad_alloc) or nothing at all.
@pytest.mark.parametrize("family, name", [("tfidf-lr", "tfidf_lr.npz"), ("fasttext", "fasttext.bin"),
                                          ("word2vec", "word2vec_lr.npz"), ("word2vec", "word2vec_vectors.bin")])
@pytest.mark.parametrize("size", [0, 100, "half"])
def test_model_file_cut_short_is_a_clear_error_naming_it(family, name, size, tmp_path, single_parts):
    FAST[family](seed=0).fit(single_parts["train"]).save(tmp_path / "m")
    file = tmp_path / "m" / name
    full = file.stat().st_size
    with open(file, "r+b") as fh:
        fh.truncate(full // 2 if size == "half" else size)
    with pytest.raises(NlpkitError, match=rf"cannot read the {family} model in .*m: {name} has [\d,]+ bytes but was "
                                          rf"saved with {full:,} \(cut short or overwritten\)\. Re-run the experiment"):
        load_model(tmp_path / "m")
    # Without the record (models saved before it): the file's own structure tells (fasttext_format).
    _without_file_records(tmp_path / "m")
    with pytest.raises(NlpkitError, match=rf"cannot read the {family} model in .*{name}: .*Re-run the experiment"):
        load_model(tmp_path / "m")


def test_fasttext_bad_alloc_on_a_damaged_file_is_a_clear_error(tmp_path, single_parts, monkeypatch):
    import fasttext

    FAST["fasttext"](seed=0).fit(single_parts["train"]).save(tmp_path / "m")
    _without_file_records(tmp_path / "m")

    def bad_alloc(path):
        raise MemoryError("std::bad_alloc")  # what fastText raised on a fasttext.bin cut to 100 bytes

    monkeypatch.setattr(fasttext, "load_model", bad_alloc)
    with pytest.raises(NlpkitError, match=r"cannot read the fasttext model in .*fasttext.bin: the file is damaged "
                                          r"\(it asks for more memory than there is\)\. Re-run the experiment"):
        load_model(tmp_path / "m")


def test_changed_model_file_of_the_same_size_is_caught_by_its_sha256(tmp_path, single_parts):
    FAST["tfidf-lr"](seed=0).fit(single_parts["train"]).save(tmp_path / "m")
    file = tmp_path / "m" / "tfidf_lr.npz"
    data = bytearray(file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    file.write_bytes(bytes(data))
    with pytest.raises(NlpkitError, match="tfidf_lr.npz does not match the sha256 recorded when it was saved"):
        load_model(tmp_path / "m")


def test_saved_model_records_size_and_sha256_of_each_file(tmp_path, single_parts):
    import hashlib

    FAST["tfidf-lr"](seed=0).fit(single_parts["train"]).save(tmp_path / "m")
    files = json.loads((tmp_path / "m" / "nlpkit_model.json").read_text(encoding="utf-8"))["files"]
    on_disk = sorted(f.name for f in (tmp_path / "m").iterdir() if f.name != "nlpkit_model.json")
    assert sorted(files) == on_disk
    for name, record in files.items():
        data = (tmp_path / "m" / name).read_bytes()
        assert record == {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    meta = json.loads((tmp_path / "m" / "nlpkit_model.json").read_text(encoding="utf-8"))
    for junk in ("junk", {"../outside.npz": {"bytes": 1, "sha256": "0"}}):
        meta["files"] = junk
        (tmp_path / "m" / "nlpkit_model.json").write_text(json.dumps(meta), encoding="utf-8")
        with pytest.raises(NlpkitError, match="the 'files' record of nlpkit_model.json is damaged"):
            load_model(tmp_path / "m")


def test_saved_params_this_version_rejects_are_a_clear_load_error(tmp_path, single_parts):
    FAST["tfidf-lr"](seed=0).fit(single_parts["train"]).save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "nlpkit_model.json").read_text(encoding="utf-8"))
    meta["params"]["min_df"] = -1  # accepted by earlier versions
    (tmp_path / "m" / "nlpkit_model.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(NlpkitError, match="cannot read the tfidf-lr model in .*nlpkit_model.json: tfidf-lr: min_df "
                                          "must be a whole number >= 1; got -1. Re-run the experiment"):
        load_model(tmp_path / "m")


# --- word vectors files -------------------------------------------------------------------------

WORDS = ["apple", "banana", "engine", "piston", "football", "goal"]


def _vectors(dim=4):
    rng = np.random.default_rng(0)
    return {w: rng.normal(size=dim).round(4) for w in WORDS}


def _write_text(path, vecs, header=True):
    dim = len(next(iter(vecs.values())))
    lines = [f"{len(vecs)} {dim}"] if header else []
    lines += [w + " " + " ".join(str(x) for x in v) for w, v in vecs.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_vectors_text_binary_and_glove_formats(tmp_path):
    vecs = _vectors()
    text = _write_text(tmp_path / "v.txt", vecs)
    glove = _write_text(tmp_path / "glove.txt", vecs, header=False)
    kv = load_vectors(text)
    binary = tmp_path / "v.bin"
    kv.save_word2vec_format(str(binary), binary=True)
    assert sniff_vectors_format(text)["binary"] is False
    assert sniff_vectors_format(binary)["binary"] is True
    assert sniff_vectors_format(glove)["no_header"] is True
    for path in (text, binary, glove):
        loaded = load_vectors(path)
        np.testing.assert_allclose(loaded["engine"], vecs["engine"], atol=1e-4)


def test_vectors_pickle_unknown_and_ragged_files_are_refused(tmp_path):
    pickled = tmp_path / "v.kv"
    pickled.write_bytes(b"\x80\x04\x95 pickled gensim")
    with pytest.raises(NlpkitError, match="pickled gensim file"):
        sniff_vectors_format(pickled)
    junk = tmp_path / "junk.txt"
    junk.write_text("this is not\na vectors file\n")
    with pytest.raises(NlpkitError, match="not a word-vector file"):
        sniff_vectors_format(junk)
    ragged = tmp_path / "ragged.txt"
    ragged.write_text("2 4\napple 0.1 0.2 0.3 0.4\nbanana 0.1 0.2\n")
    with pytest.raises(DataError, match="every row has 4 numbers"):
        load_vectors(ragged)
    with pytest.raises(ConfigError, match="4-dimensional vectors but vector_size=8"):
        load_vectors(_write_text(tmp_path / "ok.txt", _vectors()), expected_dim=8)


def test_word2vec_with_pretrained_vectors_round_trip(tmp_path, single_parts):
    path = _write_text(tmp_path / "v.txt", _vectors())
    model = Word2VecClassifier(vectors=str(path)).fit(single_parts["train"])
    assert model.fit_info()["dim"] == 4 and model.fit_info()["vocabulary_size"] == len(WORDS)
    model.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    np.testing.assert_array_equal(again.predict_proba(single_parts["test"].texts),
                                  model.predict_proba(single_parts["test"].texts))


def test_stable_hash_does_not_depend_on_the_process():
    import subprocess
    import sys

    code = "from nlpkit.models.word2vec import stable_hash; print(stable_hash('engine0'))"
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={"PYTHONHASHSEED": seed, "PATH": ""}, cwd=str(_repo())).stdout for seed in ("1", "2")}
    assert outs == {f"{stable_hash('engine0')}\n"}


def _repo():
    from pathlib import Path

    return Path(__file__).resolve().parent.parent


# --- quality sanity on the bundled samples ------------------------------------------------------

def _bundled(data_dir, name):
    from nlpkit.data import read_dataset
    from nlpkit.experiment import carve_valid

    ds = read_dataset(data_dir / name)
    rest, test = carve_valid(ds, fraction=0.25, seed=0)
    return rest, test


@pytest.mark.slow
@pytest.mark.parametrize("family", ["tfidf-lr", "fasttext", "word2vec"])
def test_beats_label_priors_on_held_out_agnews(family, data_dir):
    from nlpkit.metrics import evaluate
    from nlpkit.models import get_model_class
    from nlpkit.models.majority import MajorityClassifier

    train, test = _bundled(data_dir, "agnews_sample.jsonl")
    model = get_model_class(family)(seed=0).fit(train)
    acc = evaluate(test.y, model.predict_proba(test.texts), task="single")["metrics"]["accuracy"]
    floor = evaluate(test.y, MajorityClassifier().fit(train).predict_proba(test.texts), task="single")["metrics"]["accuracy"]
    assert acc > floor + 0.2, (acc, floor)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="MALLOC_PERTURB_ is glibc's")
def test_fasttext_trains_the_same_whatever_the_heap_holds(single_parts, monkeypatch):
    # fasttext-numpy2 leaves nine tenths of its input matrix uncleared (see _ZEROED_MALLOC): a heap
    # holding leftovers made training diverge or change. MALLOC_PERTURB_=1, inherited by the
    # training process unless nlpkit overrides it, fills every allocation with 0xfe bytes.
    texts = single_parts["test"].texts

    def fit():
        return FastTextClassifier(dim=8, epoch=5, word_ngrams=1, max_df=None, seed=0).fit(single_parts["train"])

    clean = fit()
    monkeypatch.setenv("MALLOC_PERTURB_", "1")
    dirty = fit()
    assert clean.fit_info()["warnings"] == [] and dirty.fit_info()["warnings"] == []
    np.testing.assert_array_equal(dirty.predict_proba(texts), clean.predict_proba(texts))


@pytest.mark.slow
def test_fasttext_repeated_fits_in_one_process_are_identical(single_parts, multi_parts):
    # liblinear fits and earlier fastText trainings in the same process used to change fastText's
    # results (memory the library never clears, see _ZEROED_MALLOC); training runs in a fresh process.
    TfidfLogisticRegression().fit(multi_parts["train"])
    runs = [FastTextClassifier(dim=8, epoch=5, seed=0).fit(single_parts["train"]).predict_proba(single_parts["test"].texts)
            for _ in range(3)]
    for other in runs[1:]:
        np.testing.assert_array_equal(other, runs[0])


@pytest.mark.slow
def test_fasttext_autotune_on_valid_is_kept_only_when_better(single_parts):
    model = FastTextClassifier(tune=True, tune_seconds=2, word_ngrams=2, max_df=None, seed=0).fit(single_parts["train"],
                                                                                      single_parts["valid"])
    info = model.fit_info()
    tuned = info["autotune"]
    assert tuned["seconds"] == 2 and tuned["kept"] in ("autotune", "defaults")
    if "error" not in tuned:  # autotune ran: both scored on valid, the rule applied
        lo, hi = tuned["difference_interval_68"]
        assert tuned["kept"] == ("autotune" if lo > 0 else "defaults")
        assert info["autotuned"] == (tuned["kept"] == "autotune")
    assert model.predict_proba(single_parts["test"].texts).shape == (len(single_parts["test"]), 4)
    with pytest.raises(ConfigError, match="tuning needs a validation part"):
        FastTextClassifier(tune=True, tune_seconds=2).fit(single_parts["train"])


@pytest.mark.slow
@pytest.mark.parametrize("autotune_wins", [True, False])
def test_fasttext_autotune_is_weighed_against_the_average(reuters_parts, monkeypatch, autotune_wins):
    # autotune's model stands alone against the two defaults averaged; it trains on the reference's file
    import nlpkit.metrics

    real = fasttext_process.train_in_fresh_processes
    seen = []

    def quick(jobs):  # autotune replaced by a plain training of its arguments, to keep the test fast
        out = []
        for args, path, timeout in jobs:
            if "autotuneValidationFile" in args:
                seen.append(Path(args["input"]).name)
                args = {k: v for k, v in args.items() if not k.startswith("autotune")}
                args.update(dim=4, epoch=2, wordNgrams=1)
            out += real([(args, path, timeout)])
        return out

    compared = []

    def rule(y, preds, metric, seed=0):
        compared.append(len(preds))
        return (1 if autotune_wins else 0), {1: (0.01, 0.02) if autotune_wins else (-0.02, -0.01)}

    monkeypatch.setattr(fasttext_process, "train_in_fresh_processes", quick)
    monkeypatch.setattr(nlpkit.metrics, "choose_over_reference", rule)
    model = FastTextClassifier(dim=8, epoch=5, seed=0, combine="average", tune=True, tune_seconds=2)
    model.fit(reuters_parts["train"], reuters_parts["valid"])
    info = model.fit_info()
    assert seen == ["train.txt"] and compared == [2]
    assert info["autotune"]["kept"] == ("autotune" if autotune_wins else "defaults")
    assert info["autotuned"] is autotune_wins
    assert [(m["word_ngrams"], m["init_norm"]) for m in info["members"]] == (
        [(1, None)] if autotune_wins else [(2, None), (1, 1.0)])
    assert model.predict_proba(reuters_parts["valid"].texts).shape == (len(reuters_parts["valid"]), len(model.label_names_))


def test_fasttext_process_that_writes_start_vectors_can_import_this_nlpkit(tmp_path, monkeypatch):
    # that process imports nlpkit: from where this one did, even when nlpkit is not installed
    import subprocess

    import nlpkit

    envs = []

    class Finished:
        returncode = 3

        def __init__(self, cmd, env, **kwargs):
            envs.append(env)

        def wait(self, timeout=None):
            return self.returncode

        def poll(self):
            return self.returncode

    monkeypatch.setattr(subprocess, "Popen", Finished)
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    root = str(Path(nlpkit.__file__).resolve().parent.parent)
    start = {fasttext_process.START_KEY: {}}
    results = fasttext_process.train_in_fresh_processes([(start, tmp_path / "a.bin", None)])
    fasttext_process.train_in_fresh_processes([({}, tmp_path / "b.bin", None)])
    assert envs[0]["PYTHONPATH"].split(os.pathsep) == ["/elsewhere", root]
    assert envs[1]["PYTHONPATH"] == "/elsewhere"  # no start vectors: nothing added
    assert envs[0]["MALLOC_PERTURB_"] == "255" and isinstance(results[0], RuntimeError)


def test_fasttext_training_process_is_killed_at_its_time_bound(tmp_path, monkeypatch):
    import time


    monkeypatch.setattr(fasttext_process, "_TRAIN_SCRIPT", "import time; time.sleep(60)")
    start = time.perf_counter()
    (result,) = fasttext_process.train_in_fresh_processes([({}, tmp_path / "model.bin", 1)])
    assert isinstance(result, TimeoutError) and "did not finish within 1 s" in str(result)
    assert time.perf_counter() - start < 30  # killed, not waited for


def test_fasttext_autotune_that_overruns_keeps_the_defaults(single_parts, monkeypatch):
    # fastText's autotune retrains without a time bound after its search; nlpkit bounds the whole run.
    from nlpkit.models import fasttext_clf

    real = fasttext_process.train_in_fresh_processes
    seen = []

    def overrunning(jobs):
        ((args, out, timeout),) = jobs
        seen.append((sorted(k for k in args if k.startswith("autotune")), timeout))
        if "autotuneValidationFile" in args:
            return [TimeoutError(f"fastText training did not finish within {timeout:g} s")]
        return real(jobs)

    monkeypatch.setattr(fasttext_process, "train_in_fresh_processes", overrunning)
    model = FastTextClassifier(tune=True, tune_seconds=2, word_ngrams=2, max_df=None, seed=0).fit(single_parts["train"],
                                                                                      single_parts["valid"])
    info = model.fit_info()
    # the defaults first (no time bound), then autotune with its deadline
    assert seen[0] == ([], None) and seen[1][1] == fasttext_clf._autotune_timeout(2)
    assert info["autotuned"] is False and info["autotune"]["kept"] == "defaults"
    assert any("autotune did not finish within" in w for w in info["warnings"])
    untuned = FastTextClassifier(word_ngrams=2, max_df=None, seed=0).fit(single_parts["train"], single_parts["valid"])
    np.testing.assert_array_equal(model.predict_proba(single_parts["test"].texts),
                                  untuned.predict_proba(single_parts["test"].texts))


def test_fasttext_default_autotune_budget_follows_the_default_training_time(single_parts, monkeypatch):

    real = fasttext_process.train_in_fresh_processes
    deadlines = []

    def recording(jobs):
        ((args, out, timeout),) = jobs
        if "autotuneValidationFile" in args:
            deadlines.append((args["autotuneDuration"], timeout))
            return [RuntimeError("Encountered NaN.")]
        return real(jobs)

    monkeypatch.setattr(fasttext_process, "train_in_fresh_processes", recording)
    model = FastTextClassifier(tune=True, word_ngrams=2, max_df=None, seed=0).fit(single_parts["train"], single_parts["valid"])
    ((budget, deadline),) = deadlines
    # twice the default training's time (at least 5 s), then 1.5 times it (at least 5 s) for the final fit
    assert budget >= 5 and deadline == pytest.approx(budget + max(0.75 * budget, 5), abs=0.8)
    assert model.fit_info()["autotune"] == {"seconds": budget, "deadline_seconds": round(deadline, 1),
                                            "kept": "defaults", "error": "Encountered NaN."}
    assert any("autotune failed (Encountered NaN.)" in w for w in model.fit_info()["warnings"])


@pytest.fixture
def reuters_parts(data_dir):
    """Train and valid parts of the bundled Reuters sample (multi-label, real text)."""
    from nlpkit.experiment import carve_valid

    train, valid = carve_valid(_reuters_data(data_dir), fraction=0.25, seed=0)
    return {"train": train, "valid": valid}


@pytest.mark.slow
def test_fasttext_average_of_both_recipes_is_taken_on_their_logits(reuters_parts, tmp_path):
    parts = reuters_parts
    model = FastTextClassifier(dim=8, epoch=5, seed=0, combine="average").fit(parts["train"], parts["valid"])
    info = model.fit_info()
    bi, uni = "word_ngrams=2", "word_ngrams=1, max_df=0.1"
    assert info["combine"] == "average" and info["settings_choice"] is None
    frequent = fasttext_clf.frequent_words([normalize(t) for t in parts["train"].texts], 0.1)
    assert [(m["word_ngrams"], m["max_df"], m["dropped_words"], m["init_norm"]) for m in info["members"]] == [
        (2, None, 0, None), (1, 0.1, len(frequent), 1.0)]
    assert [(c.label, c.drop, model.f.getArgs().wordNgrams) for c, model in model.members_] == [
        (bi, frozenset(), 2), (uni, frequent, 1)]
    # each model's score on valid and the average's are recorded
    assert info["average"]["metric"] == "micro_f1" and list(info["average"]["valid"]) == [bi, uni, "their average"]
    # the average is taken on the logits: sigmoid of the mean log-odds, label by label
    texts = parts["valid"].texts
    each = np.stack([model._member_scores([member], texts)[0] for member in model.members_])
    assert not np.allclose(each[0], each[1])
    odds = np.log(np.clip(each, 1e-12, 1 - 1e-12) / (1 - np.clip(each, 1e-12, 1 - 1e-12))).mean(axis=0)
    np.testing.assert_allclose(model.predict_proba(texts), 1 / (1 + np.exp(-odds)), rtol=1e-9, atol=1e-12)
    again = FastTextClassifier(dim=8, epoch=5, seed=0, combine="average").fit(parts["train"], parts["valid"])
    assert again.fit_info()["average"] == info["average"]  # same seed, same model
    np.testing.assert_array_equal(again.predict_proba(texts), model.predict_proba(texts))
    # saved as one fastText file per model; reloads to the same scores, the file names checked
    model.save(tmp_path / "m")
    assert {"fasttext.bin", "fasttext-1.bin"} <= {f.name for f in (tmp_path / "m").iterdir()}
    state = json.loads((tmp_path / "m" / LABELS_JSON).read_text(encoding="utf-8"))
    assert [(m["file"], m["max_df"], m["dropped_words"]) for m in state["members"]] == [
        ("fasttext.bin", None, []), ("fasttext-1.bin", 0.1, sorted(frequent))]
    np.testing.assert_array_equal(load_model(tmp_path / "m").predict_proba(texts), model.predict_proba(texts))
    _without_file_records(tmp_path / "m")
    for bad in ({"file": "../fasttext-1.bin"}, {"max_df": "high"}, {"dropped_words": "the"}):
        edited = {**state, "members": [state["members"][0], {**state["members"][1], **bad}]}
        (tmp_path / "m" / LABELS_JSON).write_text(json.dumps(edited), encoding="utf-8")
        with pytest.raises(NlpkitError, match="fasttext_labels.json does not match"):
            load_model(tmp_path / "m")
    (tmp_path / "m" / LABELS_JSON).write_text(json.dumps(state), encoding="utf-8")
    (tmp_path / "m" / "fasttext-1.bin").unlink()
    with pytest.raises(NlpkitError, match="fasttext-1.bin"):
        load_model(tmp_path / "m")


def test_fasttext_average_of_softmax_models_is_their_renormalised_geometric_mean(single_parts):
    model = FastTextClassifier(dim=8, epoch=5, seed=0, combine="average").fit(single_parts["train"], single_parts["valid"])
    texts = single_parts["valid"].texts
    each = np.stack([model._member_scores([member], texts)[0] for member in model.members_])
    assert len(each) == 2 and not np.allclose(each[0], each[1])
    geometric = np.sqrt(each[0] * each[1])
    np.testing.assert_allclose(model.predict_proba(texts), geometric / geometric.sum(axis=1, keepdims=True), rtol=1e-9)


def test_fasttext_pool_keeps_unknown_labels_at_zero_and_bounds_certain_scores():
    model = FastTextClassifier()
    model.task_ = "multi"
    a = np.array([[1.0, 0.0, 0.5], [0.2, 0.0, 1e-5]])
    b = np.array([[1.0, 0.0, 0.5], [0.8, 0.0, 1e-5]])
    pooled = model._pool([a, b])
    assert np.isfinite(pooled).all() and pooled[0, 0] > 0.999 and (pooled[:, 1] == 0).all()
    np.testing.assert_allclose(pooled[:, 2], [0.5, 1e-5])
    np.testing.assert_allclose(pooled[1, 0], 0.5)  # log-odds of 0.2 and 0.8 cancel
    model.task_ = "single"
    pooled = model._pool([np.array([[0.9, 0.1, 0.0]]), np.array([[0.1, 0.9, 0.0]])])
    np.testing.assert_allclose(pooled, [[0.5, 0.5, 0.0]])


def test_fasttext_auto_chooses_among_both_recipes_and_their_average_on_valid(reuters_parts, monkeypatch):
    parts = reuters_parts
    model = FastTextClassifier(dim=8, epoch=5, seed=0).fit(parts["train"], parts["valid"])
    info = model.fit_info()
    choice = info["settings_choice"]
    bi, uni, both = "word_ngrams=2", "word_ngrams=1, max_df=0.1", fasttext_clf.AVERAGE_LABEL
    assert info["combine"] == "auto" and info["average"] is None
    assert choice["reference"] == bi and list(choice["valid"]) == [bi, uni, both]
    lower = {name: choice["difference_interval_68"][name][0] for name in (uni, both)}
    expected = bi if max(lower.values()) <= 0 else max(lower, key=lower.get)
    assert choice["chosen"] == expected
    assert [m["word_ngrams"] for m in info["members"]] == {bi: [2], uni: [1], both: [2, 1]}[expected]
    # when the average is clearly better on valid, it is kept: both models, averaged
    scores = {"bi": np.array([[0.9, 0.1]] * 50 + [[0.6, 0.4]] * 50), "uni": np.array([[0.6, 0.4]] * 50 + [[0.9, 0.1]] * 50)}
    valid = make_dataset([f"doc {i}" for i in range(100)], ["a"] * 100, task="single", label_names=["a", "b"])
    scores["bi"][:30] = [[0.45, 0.55]]  # bigrams wrong on 30, unigrams on 30 others, the average on none
    scores["uni"][60:90] = [[0.45, 0.55]]
    monkeypatch.setattr(FastTextClassifier, "_scores", lambda self, model, lines, drop: scores[model])
    auto = FastTextClassifier(seed=0)
    auto.task_, auto.text_rule_ = "single", fasttext_clf.TEXT_RULE
    pairs = [(fasttext_clf._Candidate(2, None, {}, frozenset()), "bi"), (fasttext_clf._Candidate(1, 0.1, {}, frozenset()), "uni")]
    kept, choice = auto._choose(pairs, valid, with_average=True)
    assert choice["valid"] == {bi: 0.7, uni: 0.7, both: 1.0} and choice["chosen"] == both and kept == pairs


@pytest.mark.slow
def test_fasttext_choose_keeps_one_recipe_and_records_the_choice(reuters_parts):
    parts = reuters_parts
    model = FastTextClassifier(dim=8, epoch=5, seed=0, combine="choose").fit(parts["train"], parts["valid"])
    info = model.fit_info()
    choice = info["settings_choice"]
    bi, uni = "word_ngrams=2", "word_ngrams=1, max_df=0.1"
    assert choice["metric"] == "micro_f1" and choice["reference"] == bi and list(choice["valid"]) == [bi, uni]
    assert info["average"] is None and info["combine"] == "choose"
    lo, hi = choice["difference_interval_68"][uni]
    assert lo <= choice["valid"][uni] - choice["valid"][bi] <= hi
    assert choice["chosen"] == (uni if lo > 0 else bi)
    ((member, fitted),) = model.members_
    assert (info["members"][0]["word_ngrams"], info["members"][0]["max_df"]) == ((1, 0.1) if lo > 0 else (2, None))
    assert fitted.f.getArgs().wordNgrams == info["members"][0]["word_ngrams"]
    assert info["members"][0]["dropped_words"] == len(member.drop) == (
        len(fasttext_clf.frequent_words([normalize(t) for t in parts["train"].texts], 0.1)) if lo > 0 else 0)
    again = FastTextClassifier(dim=8, epoch=5, seed=0, combine="choose").fit(parts["train"], parts["valid"])
    assert again.fit_info()["settings_choice"] == choice


@pytest.mark.parametrize("unigram_accuracy, chosen", [(0.95, 1), (0.81, 2), (0.70, 2)])
def test_fasttext_unigrams_replace_bigrams_only_when_clearly_better_on_valid(unigram_accuracy, chosen, monkeypatch):
    # 400 validation documents, 2 classes; bigrams are right on 80 %. A 1-point lead is noise on
    # 400 documents (standard error of the difference ~2 points), a 15-point lead is not.
    n = 400
    labels = ["a", "b"] * (n // 2)
    valid = make_dataset([f"doc {i}" for i in range(n)], labels, task="single", label_names=["a", "b"])
    truth = np.array([0, 1] * (n // 2))
    rng = np.random.default_rng(0)

    def scores_right_on(share):
        right = np.zeros(n, dtype=bool)
        right[rng.permutation(n)[: int(round(share * n))]] = True
        predicted = np.where(right, truth, 1 - truth)
        return np.eye(2)[predicted] * 0.8 + 0.1

    fake = {"bigrams": scores_right_on(0.80), "unigrams": scores_right_on(unigram_accuracy)}
    monkeypatch.setattr(FastTextClassifier, "_scores", lambda self, model, texts, drop: fake[model])
    model = FastTextClassifier(seed=0, combine="choose")
    model.task_, model.text_rule_ = "single", fasttext_clf.TEXT_RULE
    bi = fasttext_clf._Candidate(2, None, {"wordNgrams": 2}, frozenset())
    uni = fasttext_clf._Candidate(1, 0.1, {"wordNgrams": 1}, frozenset({"doc"}))
    ((candidate, kept),), choice = model._choose([(bi, "bigrams"), (uni, "unigrams")], valid)
    assert choice["valid"] == {"word_ngrams=2": 0.8, "word_ngrams=1, max_df=0.1": unigram_accuracy}
    assert choice["chosen"] == candidate.label == ("word_ngrams=1, max_df=0.1" if chosen == 1 else "word_ngrams=2")
    assert candidate.word_ngrams == chosen and kept == ("unigrams" if chosen == 1 else "bigrams")


@pytest.mark.slow
def test_fasttext_settings_trained_without_valid_or_with_fixed_options(multi_parts, monkeypatch):
    real = fasttext_process.train_in_fresh_processes
    batches = []

    def spy(jobs):
        batches.append([(args["wordNgrams"], Path(args["input"]).name) for args, _out, _timeout in jobs])
        return real(jobs)

    monkeypatch.setattr(fasttext_process, "train_in_fresh_processes", spy)
    train, valid = multi_parts["train"], multi_parts["valid"]
    no_valid = FastTextClassifier(dim=8, epoch=5, seed=0).fit(train)
    averaged = FastTextClassifier(dim=8, epoch=5, seed=0, combine="average").fit(train)  # needs no valid part
    fixed = FastTextClassifier(dim=8, epoch=5, seed=0, word_ngrams=3, max_df=None).fit(train, valid)
    FastTextClassifier(dim=8, epoch=5, seed=0, word_ngrams=3).fit(train, valid)  # max_df auto: with and without
    FastTextClassifier(dim=8, epoch=5, seed=0, max_df=0.5).fit(train, valid)  # word_ngrams auto: 2 and 1
    every, filtered = "train.txt", "train-max_df0.1.txt"
    assert batches == [[(2, every)], [(2, every), (1, filtered)], [(3, every)], [(3, every), (3, filtered)],
                       [(2, "train-max_df0.5.txt"), (1, "train-max_df0.5.txt")]]
    assert no_valid.fit_info()["settings_choice"] is None and no_valid.fit_info()["members"] == [
        {"word_ngrams": 2, "max_df": None, "dropped_words": 0, "init_norm": None, "bucket": 200_000,
         "vocabulary_size": no_valid.fit_info()["members"][0]["vocabulary_size"]}]
    assert len(averaged.fit_info()["members"]) == 2 and averaged.fit_info()["average"] is None  # nothing to score on
    assert [m["word_ngrams"] for m in fixed.fit_info()["members"]] == [3]


@pytest.mark.slow
def test_fasttext_a_failed_candidate_is_dropped_and_all_failed_are_retried(reuters_parts, monkeypatch):
    real = fasttext_process.train_in_fresh_processes
    batches = []

    def fail(jobs, which):
        batches.append([(args["wordNgrams"], args["lr"]) for args, _out, _timeout in jobs])
        return [RuntimeError("Encountered NaN.") if args["wordNgrams"] in which else real([(args, out, timeout)])[0]
                for args, out, timeout in jobs]

    # unigrams diverge, bigrams train: unigrams are dropped, not retried
    monkeypatch.setattr(fasttext_process, "train_in_fresh_processes", lambda jobs: fail(jobs, {1}))
    model = FastTextClassifier(dim=8, epoch=5, seed=0, lr=0.4).fit(reuters_parts["train"], reuters_parts["valid"])
    assert batches == [[(2, 0.4), (1, 0.4)]]
    info = model.fit_info()
    assert [m["word_ngrams"] for m in info["members"]] == [2] and info["settings_choice"] is None
    assert "training with word_ngrams=1, max_df=0.1 failed (Encountered NaN.); dropped it." in info["warnings"]

    # both diverge at first: both are retried at half the rate
    batches.clear()
    monkeypatch.setattr(fasttext_process, "train_in_fresh_processes", lambda jobs: fail(jobs, {1, 2} if len(batches) == 0 else set()))
    model = FastTextClassifier(dim=8, epoch=5, seed=0, lr=0.4).fit(reuters_parts["train"], reuters_parts["valid"])
    assert batches == [[(2, 0.4), (1, 0.4)], [(2, 0.2), (1, 0.2)]]
    assert model.fit_info()["warnings"].count("training diverged with lr 0.4; retried with lr 0.2.") == 1  # once per round
    assert list(model.fit_info()["settings_choice"]["valid"]) == ["word_ngrams=2", "word_ngrams=1, max_df=0.1",
                                                                  fasttext_clf.AVERAGE_LABEL]
    assert model.fit_info()["lr"] == 0.2

    # a candidate that keeps diverging is a clear error
    monkeypatch.setattr(fasttext_process, "train_in_fresh_processes", lambda jobs: fail(jobs, {1, 2}))
    with pytest.raises(DataError, match="diverged even with lr 0.05; pass a smaller lr"):
        FastTextClassifier(dim=8, epoch=5, seed=0, lr=0.4).fit(reuters_parts["train"], reuters_parts["valid"])


def test_fasttext_parallel_trainings_report_each_outcome_in_order(tmp_path, multi_parts):

    train_file = tmp_path / "train.txt"
    FastTextClassifier._write_examples(train_file, multi_parts["train"])
    good = dict(input=str(train_file), dim=4, epoch=1, wordNgrams=2, thread=1, verbose=0)
    bad = dict(good, loss="no-such-loss")
    results = fasttext_process.train_in_fresh_processes(
        [(bad, tmp_path / "a.bin", None), (good, tmp_path / "b.bin", None)])
    assert isinstance(results[0], RuntimeError) and "Unrecognized loss name" in str(results[0])
    assert results[1].get_dimension() == 4


def _sorted_reviews(n, seed, cue_rate=0.1):
    """Two-class texts with a weak signal, stored class after class (negatives first)."""
    rng = np.random.default_rng(seed)
    cues = {"neg": "bad poor awful broken".split(), "pos": "good great lovely works".split()}
    filler = "the a book it was this one and i read".split()
    texts, labels = [], []
    for label in ("neg", "pos"):
        for _ in range(n // 2):
            texts.append(" ".join(rng.choice(cues[label]) if rng.random() < cue_rate else rng.choice(filler)
                                  for _ in range(12)))
            labels.append(label)
    return make_dataset(texts, labels)


def test_fasttext_training_file_is_shuffled_by_the_seed(tmp_path):
    data = _sorted_reviews(40, seed=0)

    def lines(seed):
        path = tmp_path / f"train{seed}.txt"
        FastTextClassifier._write_examples(path, data, shuffle_seed=seed)
        return path.read_text(encoding="utf-8").splitlines()

    in_order = [f"__label__{0 if i < 20 else 1} {text}" for i, text in enumerate(data.texts)]
    assert sorted(lines(0)) == sorted(in_order) and lines(0) != in_order
    assert lines(0) == lines(0) and lines(0) != lines(1)


def test_fasttext_frequent_words_and_their_removal():
    lines = ["the cat sat", "the dog", "a cat", "the end"]
    assert fasttext_clf.frequent_words(lines, 0.5) == {"the"}  # in 3 of 4; "cat" in 2 of 4 is not more than half
    assert fasttext_clf.frequent_words(lines, 0.25) == {"the", "cat"}
    assert fasttext_clf.frequent_words(lines, 1.0) == fasttext_clf.frequent_words(lines, None) == frozenset()
    assert fasttext_clf.without_words("the cat sat", frozenset({"the"})) == "cat sat"
    assert fasttext_clf.without_words("the the", frozenset({"the"})) == "the the"  # nothing left: kept whole
    assert fasttext_clf.without_words("x y", frozenset()) == "x y"


def test_fasttext_max_df_leaves_frequent_words_out_of_training_and_prediction(tmp_path, monkeypatch):
    data = _sorted_reviews(200, seed=0)  # filler words in most texts, each cue word in about a quarter
    written = []
    real = FastTextClassifier._write_examples

    def spy(path, dataset, shuffle_seed=None, drop=frozenset(), lines=None):
        n = real(path, dataset, shuffle_seed=shuffle_seed, drop=drop, lines=lines)
        written.append([line.split()[1:] for line in Path(path).read_text(encoding="utf-8").splitlines()])
        return n

    monkeypatch.setattr(FastTextClassifier, "_write_examples", staticmethod(spy))
    model = FastTextClassifier(dim=8, epoch=5, word_ngrams=2, max_df=0.5, seed=0).fit(data)
    ((member, _fitted),) = model.members_
    dropped = member.drop
    assert dropped == fasttext_clf.frequent_words([normalize(t) for t in data.texts], 0.5)
    assert {"the", "book"} <= dropped and not {"good", "bad"} & dropped
    assert model.fit_info()["members"][0]["max_df"] == 0.5 and model.fit_info()["members"][0]["dropped_words"] == len(dropped)
    (lines,) = written
    # a text keeps its frequent words only when it has no other word
    assert all(not dropped & set(words) or set(words) <= dropped for words in lines)
    assert sum(set(words) <= dropped for words in lines) < len(lines) / 2
    assert {"good", "bad"} <= {word for words in lines for word in words}
    # at prediction, a frequent word is left out as in training
    np.testing.assert_array_equal(model.predict_proba(["good the book"]), model.predict_proba(["good"]))
    model.save(tmp_path / "m")
    assert json.loads((tmp_path / "m" / LABELS_JSON).read_text(encoding="utf-8"))["members"][0]["dropped_words"] == sorted(dropped)
    again = load_model(tmp_path / "m")
    assert again.members_[0][0].drop == dropped
    np.testing.assert_array_equal(again.predict_proba(data.texts), model.predict_proba(data.texts))


def test_fasttext_saved_before_averaging_or_max_df_reloads(tmp_path, multi_parts):
    model = FastTextClassifier(dim=8, epoch=5, seed=0, word_ngrams=1, max_df=0.4).fit(multi_parts["train"])
    model.save(tmp_path / "m")
    _without_file_records(tmp_path / "m")
    state_file = tmp_path / "m" / LABELS_JSON
    state = json.loads(state_file.read_text(encoding="utf-8"))
    dropped = state["members"][0]["dropped_words"]
    assert dropped
    del state["members"]
    state["dropped_words"] = dropped  # as written before averaging: one model, fasttext.bin
    state_file.write_text(json.dumps(state), encoding="utf-8")
    again = load_model(tmp_path / "m")
    assert again.members_[0][0].drop == frozenset(dropped)
    np.testing.assert_array_equal(again.predict_proba(multi_parts["train"].texts),
                                  model.predict_proba(multi_parts["train"].texts))
    del state["dropped_words"]  # as written before max_df
    state_file.write_text(json.dumps(state), encoding="utf-8")
    assert load_model(tmp_path / "m").members_[0][0].drop == frozenset()
    state["dropped_words"] = "the"
    state_file.write_text(json.dumps(state), encoding="utf-8")
    with pytest.raises(NlpkitError, match="fasttext_labels.json does not match"):
        load_model(tmp_path / "m")


def test_fasttext_learns_from_data_sorted_by_label():
    # fastText reads its file in order; unshuffled, this model ended every epoch on positives and
    # scored 0.715 (shuffled 0.885)
    train, test = _sorted_reviews(600, seed=0), _sorted_reviews(200, seed=1)
    model = FAST["fasttext"](seed=0).fit(train)
    truth = np.asarray(test.y.argmax(axis=1)).ravel()
    assert (model.predict_proba(test.texts).argmax(axis=1) == truth).mean() > 0.8


def test_word2vec_trains_its_vectors_on_a_shuffled_corpus(monkeypatch):
    # gensim reads sentences in order with a falling learning rate: data stored class after class
    # must not reach it in that order
    import gensim.models

    seen = []
    real = gensim.models.Word2Vec

    def spy(*args, sentences, **kwargs):
        seen.append([" ".join(doc) for doc in sentences])
        return real(*args, sentences=sentences, **kwargs)

    monkeypatch.setattr(gensim.models, "Word2Vec", spy)
    data = _sorted_reviews(40, seed=0)
    for seed in (0, 0, 1):
        FAST["word2vec"](seed=seed).fit(data)
    stored = [" ".join(tokenize(text)) for text in data.texts]
    assert sorted(seen[0]) == sorted(stored) and seen[0] != stored
    assert seen[0] == seen[1] and seen[0] != seen[2]


# --- cross-fitting (multi-label tf-idf + LR) -----------------------------------------------------

def _reuters_data(data_dir):
    from nlpkit.data import read_dataset

    return read_dataset(data_dir / "reuters_sample.jsonl")


@pytest.mark.slow
def test_tfidf_cross_fit_scores_are_out_of_fold_and_final_fit_uses_everything(data_dir):
    from nlpkit.models.liblinear import fit_binary_columns
    from nlpkit.split import kfold

    data = _reuters_data(data_dir)
    fold_of = kfold(data.y, 3, seed=0)
    model = TfidfLogisticRegression(n_jobs=1)
    oof = model.cross_fit(data, fold_of)
    assert oof.shape == (len(data), data.n_labels) and np.isfinite(oof).all()
    # fold 1's rows are scored by a model that never saw them: the same linear models fitted on
    # the other folds over the same features
    X = model._transform(model.vectorizers_, data.texts)
    held = np.flatnonzero(fold_of == 1)
    expected = fit_binary_columns(X, data.y, fit_rows=np.flatnonzero(fold_of != 1), score_rows=held,
                                  **model._fit_args(model.fit_info()["C"]))
    np.testing.assert_allclose(oof[held], expected, rtol=1e-9, atol=1e-12)
    # ... while the final model is fitted on every document, so it scores them higher than out of fold
    in_sample = model.predict_proba(data.texts)
    pos = data.y.toarray().astype(bool)
    assert in_sample[pos].mean() > oof[pos].mean() + 0.05
    info = model.fit_info()["cross_fit"]
    assert info["folds"] == 3 and info["documents"] == len(data) and 0 < info["out_of_fold_micro_f1"] <= 1


@pytest.mark.slow
def test_tfidf_single_label_cross_fit_scores_out_of_fold_and_refits_on_everything(data_dir):
    from nlpkit.split import kfold

    data = read_dataset(data_dir / "agnews_sample.jsonl")
    fold_of = kfold(data.y, 3, seed=0)
    model = TfidfLogisticRegression()
    oof = model.cross_fit(data, fold_of)
    assert oof.shape == (len(data), 4)
    np.testing.assert_allclose(oof.sum(axis=1), 1.0)  # softmax rows
    X = model._transform(model.vectorizers_, data.texts)
    held, rest = np.flatnonzero(fold_of == 2), np.flatnonzero(fold_of != 2)
    W, b, _ = model._fit_linear(X[rest], data.y[rest], model.fit_info()["C"])
    np.testing.assert_allclose(oof[held], model._scores(X[held], W, b), rtol=1e-6, atol=1e-9)
    W, b, _ = model._fit_linear(X, data.y, model.fit_info()["C"])  # the final model saw every document
    np.testing.assert_allclose(model.predict_proba(data.texts), model._scores(X, W, b), rtol=1e-5, atol=1e-6)
    truth = np.asarray(data.y.argmax(axis=1)).ravel()
    accuracy = float((oof.argmax(axis=1) == truth).mean())
    assert model.fit_info()["cross_fit"]["out_of_fold_accuracy"] == pytest.approx(accuracy, abs=1e-3)
    assert accuracy < float((model.predict_proba(data.texts).argmax(axis=1) == truth).mean())


@pytest.mark.slow
def test_tfidf_single_label_cross_fit_tune_selects_by_out_of_fold_accuracy(data_dir):
    from nlpkit.split import kfold

    data = read_dataset(data_dir / "agnews_sample.jsonl")
    model = TfidfLogisticRegression(tune=True, grid_C=(0.01, 100.0))
    model.cross_fit(data, kfold(data.y, 3, seed=0))
    tuning = model.fit_info()["tuning"]
    assert tuning["metric"] == "out-of-fold accuracy"
    results = {(r["C"], tuple(r["ngram_range"])): r["score"] for r in tuning["results"]}
    assert len(results) == 3 and results[(100.0, (1, 2))] > results[(0.01, (1, 2))]  # C 0.01: barely fits
    assert results[(model.fit_info()["C"], tuple(model.fit_info()["ngram_range"]))] == max(results.values())


@pytest.mark.slow
def test_tfidf_worker_processes_give_the_same_weights_as_one_process(data_dir, monkeypatch):
    from nlpkit.models import liblinear

    data = _reuters_data(data_dir)
    X = TfidfLogisticRegression()._fit_transform(data.texts, (1, 2))[1]
    args = dict(C=100.0, class_weight="balanced", tol=0.1, max_iter=1000, seed=0)
    monkeypatch.setattr(liblinear, "_PARALLEL_MIN_WORK", 0)  # small data would otherwise stay in-process
    monkeypatch.setattr(liblinear, "_MEMMAP_MIN_BYTES", 1)  # read-only memory maps, as for large data
    X = X[:, np.random.default_rng(0).permutation(X.shape[1])]  # unsorted column indices, as after fit_transform
    X.has_sorted_indices = False
    W1, b1 = liblinear.fit_binary_columns(X.copy(), data.y, n_jobs=1, **args)
    W2, b2 = liblinear.fit_binary_columns(X, data.y, n_jobs=2, **args)
    np.testing.assert_array_equal(W1, W2)
    np.testing.assert_array_equal(b1, b2)
    held = np.arange(0, len(data), 3)
    s1, s2 = (liblinear.binary_tasks(X, data.y, [(np.setdiff1d(np.arange(len(data)), held), held)], n_jobs=n, **args)[0]
              for n in (1, 2))
    np.testing.assert_array_equal(s1, s2)


@pytest.mark.slow
def test_tfidf_single_label_cross_fit_in_worker_processes_matches_one_process(data_dir, monkeypatch):
    from nlpkit.models import liblinear
    from nlpkit.split import kfold

    from nlpkit.data import read_dataset

    data = read_dataset(data_dir / "agnews_sample.jsonl")
    fold_of = kfold(data.y, 3, seed=0)
    monkeypatch.setattr(liblinear, "_PARALLEL_MIN_WORK", 0)  # small data would otherwise stay in-process
    monkeypatch.setattr(liblinear, "_MEMMAP_MIN_BYTES", 1)  # read-only memory maps, as for large data
    # (AG News texts are short: the n-gram choice, whose scores are checked below, is asked for by name)
    one = TfidfLogisticRegression(n_jobs=1, choose_ngrams=True)
    two = TfidfLogisticRegression(n_jobs=2, choose_ngrams=True)
    oof1, oof2 = one.cross_fit(data, fold_of), two.cross_fit(data, fold_of)
    np.testing.assert_array_equal(oof1, oof2)
    np.testing.assert_array_equal(one.coef_, two.coef_)
    np.testing.assert_array_equal(one.intercept_, two.intercept_)
    accuracy = (oof1.argmax(axis=1) == np.asarray(data.y.argmax(axis=1)).ravel()).mean()
    assert accuracy > 0.7
    assert one.fit_info()["cross_fit"]["out_of_fold_accuracy"] == round(float(accuracy), 6)
    for name, value in one.fit_info()["ngram_choice"]["out_of_fold"].items():
        assert 0 < value <= 1  # plain accuracies, no tie-break term


@pytest.mark.parametrize("block_rows", [1, 3, 64, 1 << 16])
def test_csr_from_dense_gives_scipys_arrays(block_rows):
    # the coefficients' conversion without scipy's int64 coordinates (4 GB for a large bigram model)
    import scipy.sparse as sp

    from nlpkit.models.tfidf_lr import csr_from_dense

    rng = np.random.default_rng(0)
    W = rng.normal(size=(200, 7))
    W[rng.random(W.shape) < 0.3] = 0
    W[5], W[-1] = 0, 0  # empty rows, the last one too
    W[7, 2] = 1e-60  # not zero in float64, zero in float32: scipy drops it after the cast
    mine, theirs = csr_from_dense(W, np.float32, block_rows), sp.csr_matrix(W.astype(np.float32))
    for name in ("data", "indices", "indptr"):
        assert getattr(mine, name).dtype == getattr(theirs, name).dtype
        np.testing.assert_array_equal(getattr(mine, name), getattr(theirs, name))
    assert mine.shape == theirs.shape and mine.nnz == theirs.nnz
    empty = csr_from_dense(np.zeros((0, 3)))
    assert empty.shape == (0, 3) and empty.nnz == 0


@pytest.mark.slow
def test_tfidf_scores_with_dense_coefficients_equal_the_sparse_product(data_dir):
    # the coefficients are kept dense (float32; faster to multiply): the same sums, bit for bit
    import scipy.sparse as sp
    from scipy.special import expit

    from nlpkit.models.liblinear import linear_scores

    data = _reuters_data(data_dir)
    model = TfidfLogisticRegression(n_jobs=1, cross_fit=0).fit(data)
    assert isinstance(model.coef_, np.ndarray) and model.coef_.dtype == np.float32
    X = model._transform(model.vectorizers_, data.texts)
    sparse_product = expit((X @ sp.csr_matrix(model.coef_)).toarray() + model.intercept_)
    np.testing.assert_array_equal(model.predict_proba(data.texts), sparse_product)
    # sparse but nearly all non-zero (as older nlpkit saved them): made dense, the same scores
    np.testing.assert_array_equal(linear_scores(X, sp.csr_matrix(model.coef_), model.intercept_, "multi"),
                                  sparse_product)
    # mostly zeros: kept sparse, the same scores
    W = sp.random(X.shape[1], 3, density=0.1, format="csr", random_state=0, dtype=np.float32)
    np.testing.assert_allclose(linear_scores(X, W, np.zeros(3), "multi"), expit(X @ W.toarray()), rtol=1e-12)


def test_tfidf_coefficients_are_kept_dense_unless_mostly_zero():
    import scipy.sparse as sp

    from nlpkit.models.tfidf_lr import compact_coefficients

    rng = np.random.default_rng(0)
    W = rng.normal(size=(50, 4))
    W[:, 0] = 0  # a label absent from train: half the entries still non-zero
    W[3, 1] = 1e-60  # zero in float32
    kept = compact_coefficients(W.copy())
    assert isinstance(kept, np.ndarray) and kept.dtype == np.float32
    np.testing.assert_array_equal(kept, W.astype(np.float32))
    W[:, 1:3] = 0  # three labels in four absent: sparse
    kept = compact_coefficients(W)
    assert sp.issparse(kept) and kept.dtype == np.float32 and kept.nnz == 50
    np.testing.assert_array_equal(kept.toarray(), W.astype(np.float32))


@pytest.mark.slow
def test_tfidf_model_saved_with_sparse_coefficients_still_loads(data_dir, tmp_path):
    # models saved before the coefficients were kept dense hold them as CSR arrays: same scores
    import shutil

    import scipy.sparse as sp

    from nlpkit.models.base import file_records

    data = _reuters_data(data_dir)
    model = TfidfLogisticRegression(n_jobs=1, cross_fit=0).fit(data)
    model.save(tmp_path / "dense")
    with np.load(tmp_path / "dense" / "tfidf_lr.npz", allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    assert arrays["coef"].dtype == np.float32 and "coef_data" not in arrays
    reloaded = load_model(tmp_path / "dense")
    assert isinstance(reloaded.coef_, np.ndarray)
    np.testing.assert_array_equal(reloaded.predict_proba(data.texts), model.predict_proba(data.texts))

    old = tmp_path / "sparse"
    shutil.copytree(tmp_path / "dense", old)
    coef = sp.csr_matrix(arrays.pop("coef"))
    np.savez_compressed(old / "tfidf_lr.npz", coef_data=coef.data, coef_indices=coef.indices, coef_indptr=coef.indptr,
                        coef_shape=np.asarray(coef.shape, dtype=np.int64), **arrays)
    meta = json.loads((old / "nlpkit_model.json").read_text(encoding="utf-8"))
    meta["files"] = file_records(old)  # as that version recorded them
    (old / "nlpkit_model.json").write_text(json.dumps(meta), encoding="utf-8")
    reloaded = load_model(old)
    assert sp.issparse(reloaded.coef_)
    np.testing.assert_array_equal(reloaded.predict_proba(data.texts), model.predict_proba(data.texts))

    # coefficients for other terms than the vocabulary's (files from two different models): an error
    np.savez_compressed(old / "tfidf_lr.npz", coef=np.zeros((coef.shape[0] - 1, coef.shape[1]), dtype=np.float32),
                        **arrays)
    meta["files"] = file_records(old)
    (old / "nlpkit_model.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(NlpkitError, match=rf"tfidf_lr.npz has coefficients for {coef.shape[0] - 1:,} terms but "
                                          rf".*tfidf_vocabulary.json holds {coef.shape[0]:,}; re-run the experiment"):
        load_model(old)


@pytest.mark.slow
def test_tfidf_without_cross_fit_chooses_word_ngrams_on_valid(data_dir):
    # large data (or cross_fit=0): the same choice as the cross-fit's, made on valid
    from nlpkit.metrics import decide, get_metric, tune_rule

    data = _reuters_data(data_dir)
    n = len(data)
    train, valid = data.subset(np.arange(n) < 0.8 * n), data.subset(np.arange(n) >= 0.8 * n)
    model = TfidfLogisticRegression(n_jobs=1, cross_fit=0).fit(train, valid)
    choice = model.fit_info()["ngram_choice"]
    assert choice["metric"] == "valid micro_f1" and choice["reference"] == [1, 2]
    lo, hi = choice["difference_interval_68"]["1-1"]
    assert choice["chosen"] == ([1, 1] if lo > 0 else [1, 2])
    assert model.fit_info()["ngram_range"] == choice["chosen"]
    # each recorded score is that candidate's model on valid, under its own tuned rule
    for ngrams in ((1, 2), (1, 1)):
        fixed = TfidfLogisticRegression(n_jobs=1, cross_fit=0, ngram_range=ngrams, choose_ngrams=False)
        fixed.fit(train, valid)
        assert "ngram_choice" not in fixed.fit_info()
        scores = fixed.predict_proba(valid.texts)
        micro = get_metric("micro_f1")(valid.y, decide(scores, tune_rule(valid.y, scores, task="multi")))
        assert choice["valid"]["%d-%d" % ngrams] == pytest.approx(micro, abs=1e-6)
        if list(ngrams) == choice["chosen"]:  # the kept model is that candidate's, unchanged
            np.testing.assert_array_equal(model.coef_, fixed.coef_)
            np.testing.assert_array_equal(model.predict_proba(valid.texts), scores)
    # no valid part, or choose_ngrams off: the reference n-grams, nothing chosen
    assert "ngram_choice" not in TfidfLogisticRegression(n_jobs=1, cross_fit=0).fit(train).fit_info()


@pytest.mark.slow
def test_tfidf_cross_fit_tune_selects_by_out_of_fold_micro_f1(data_dir):
    from nlpkit.split import kfold

    data = _reuters_data(data_dir)
    model = TfidfLogisticRegression(tune=True, grid_C=(1.0, 100.0), n_jobs=1)
    model.cross_fit(data, kfold(data.y, 3, seed=0))
    tuning = model.fit_info()["tuning"]
    assert tuning["selected_by"] == "3-fold cross-fit on train + valid"
    results = {(r["C"], tuple(r["ngram_range"])): r["score"] for r in tuning["results"]}
    assert len(results) == 3
    chosen = (model.fit_info()["C"], tuple(model.fit_info()["ngram_range"]))
    assert results[chosen] == max(results.values())


@pytest.mark.slow
def test_tfidf_cross_fit_chooses_word_ngrams_out_of_fold(data_dir):
    from nlpkit.split import kfold

    data = _reuters_data(data_dir)
    fold_of = kfold(data.y, 3, seed=0)
    model = TfidfLogisticRegression(n_jobs=1)
    oof = model.cross_fit(data, fold_of)
    choice = model.fit_info()["ngram_choice"]
    assert set(choice["out_of_fold"]) == {"1-2", "1-1"} and choice["reference"] == [1, 2]
    lo, hi = choice["difference_interval_68"]["1-1"]
    assert lo <= hi
    assert choice["chosen"] == ([1, 1] if lo > 0 else [1, 2])  # unigrams only when clearly better
    assert model.fit_info()["ngram_range"] == choice["chosen"]
    # the recorded scores are micro-F1 under the rule run_experiment tunes next (one global threshold)
    chosen_key = "-".join(map(str, choice["chosen"]))
    assert choice["out_of_fold"][chosen_key] == pytest.approx(
        model.fit_info()["cross_fit"]["out_of_fold_micro_f1"], abs=1e-6)
    assert [v.ngram_range for v in model.vectorizers_] == [tuple(choice["chosen"])]
    # the out-of-fold scores returned are the chosen candidate's: the same as a cross-fit without choice
    fixed = TfidfLogisticRegression(n_jobs=1, ngram_range=tuple(choice["chosen"]), choose_ngrams=False)
    np.testing.assert_array_equal(oof, fixed.cross_fit(data, fold_of))
    assert "ngram_choice" not in fixed.fit_info()
    np.testing.assert_array_equal(model.coef_, fixed.coef_)
    with pytest.raises(ConfigError, match="choose_ngrams must be one of .auto., True, False"):
        TfidfLogisticRegression(choose_ngrams="yes")


def test_tfidf_cross_fit_folds_by_task_and_options():
    assert TfidfLogisticRegression().cross_fit_folds("multi", 100) == 3
    assert TfidfLogisticRegression().cross_fit_folds("single", 100) == 3  # the refit on train + valid
    assert TfidfLogisticRegression(cross_fit=0).cross_fit_folds("single", 100) == 0
    assert TfidfLogisticRegression(cross_fit=0).cross_fit_folds("multi", 100) == 0
    assert TfidfLogisticRegression(tune=True, cv=4).cross_fit_folds("multi", 100) == 4
    # large data: fit on train and decide on valid (the cross-fit costs five fits for little)
    assert TfidfLogisticRegression().cross_fit_folds("multi", 50_000) == 3
    assert TfidfLogisticRegression().cross_fit_folds("multi", 50_001) == 0
    assert TfidfLogisticRegression().cross_fit_folds("single", 10**6) == 0
    assert TfidfLogisticRegression(cross_fit_max_docs=None).cross_fit_folds("multi", 10**6) == 3
    assert TfidfLogisticRegression(tune=True, cv=4).cross_fit_folds("multi", 10**6) == 4  # asked for by name
    for bad in ({"cross_fit": 1}, {"cross_fit": -2}, {"n_jobs": 0}, {"tol": 0}, {"cross_fit_max_docs": 0}):
        with pytest.raises(ConfigError):
            TfidfLogisticRegression(**bad)



def test_fasttext_start_vectors_are_the_training_words_at_the_given_length(tmp_path):
    train_file = tmp_path / "train.txt"
    # fastText's spaces (tab, vertical tab, NUL among them) separate words; labels are not words
    train_file.write_text("__label__0 oil price\tup\n__label__1 __label__0 oil\vfalls\x00again\n", encoding="utf-8")
    out = tmp_path / "start.vec"
    assert fasttext_process.write_start_vectors(train_file, out, dim=6, norm=1.5, min_count=1, seed=3) == 5
    header, *rows = out.read_text(encoding="utf-8").splitlines()
    assert header == "5 6" and [row.split(" ")[0] for row in rows] == ["oil", "price", "up", "falls", "again"]
    vectors = np.array([[float(v) for v in row.split(" ")[1:]] for row in rows])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.5, atol=1e-5)
    assert len({tuple(v) for v in vectors.round(3)}) == 5  # a direction of its own for each word

    again, other = tmp_path / "again.vec", tmp_path / "other.vec"
    fasttext_process.write_start_vectors(train_file, again, dim=6, norm=1.5, min_count=1, seed=3)
    fasttext_process.write_start_vectors(train_file, other, dim=6, norm=1.5, min_count=1, seed=4)
    assert again.read_bytes() == out.read_bytes() and other.read_bytes() != out.read_bytes()
    # fastText adds every word of the file to its vocabulary: words below min_count stay out
    fasttext_process.write_start_vectors(train_file, out, dim=6, norm=1.5, min_count=2, seed=3)
    assert out.read_text(encoding="utf-8").splitlines()[0] == "1 6" and out.read_text().splitlines()[1].startswith("oil ")


def test_fasttext_words_start_from_the_written_vectors(multi_parts):
    # at a learning rate too small to move them, the trained vectors are the start vectors
    train = multi_parts["train"]
    lengths = {}
    for init_norm in (None, 1.0, 3.0):
        model = FastTextClassifier(dim=8, epoch=1, lr=1e-9, word_ngrams=1, max_df=None, init_norm=init_norm,
                                   seed=0).fit(train)
        assert model.fit_info()["members"][0]["init_norm"] == init_norm
        fitted = model.members_[0][1]
        vectors = np.array([fitted.get_word_vector(w) for w in fitted.words if w != "</s>"])
        lengths[init_norm] = np.linalg.norm(vectors, axis=1)
    np.testing.assert_allclose(lengths[1.0], 1.0, atol=1e-4)
    np.testing.assert_allclose(lengths[3.0], 3.0, atol=1e-4)
    assert lengths[None].max() <= np.sqrt(8) / 8  # fastText's own start: uniform in +-1/dim


@pytest.mark.slow
def test_fasttext_auto_start_is_long_only_in_the_setting_without_frequent_words(reuters_parts, monkeypatch):
    real = fasttext_process.train_in_fresh_processes
    starts = []

    def spy(jobs):
        starts.append([(args["wordNgrams"], "pretrainedVectors" in args) for args, _out, _timeout in jobs])
        return real(jobs)

    monkeypatch.setattr(fasttext_process, "train_in_fresh_processes", spy)
    train, valid = reuters_parts["train"], reuters_parts["valid"]
    auto = FastTextClassifier(dim=8, epoch=5, seed=0, combine="average").fit(train, valid)
    FastTextClassifier(dim=8, epoch=5, seed=0, init_norm=None).fit(train, valid)
    FastTextClassifier(dim=8, epoch=5, seed=0, init_norm=0.5).fit(train, valid)
    assert starts == [[(2, False), (1, True)], [(2, False), (1, False)], [(2, True), (1, True)]]
    assert [(m["max_df"], m["init_norm"]) for m in auto.fit_info()["members"]] == [(None, None), (0.1, 1.0)]


def test_fasttext_autotune_starts_from_fasttexts_own_vectors(single_parts, monkeypatch):
    # autotune searches dim, which start vectors of one dim would contradict
    real = fasttext_process.train_in_fresh_processes
    seen = []

    def spy(jobs):
        ((args, _out, _timeout),) = jobs
        seen.append(("autotuneValidationFile" in args, "pretrainedVectors" in args))
        return [RuntimeError("stopped by the test")] if "autotuneValidationFile" in args else real(jobs)

    monkeypatch.setattr(fasttext_process, "train_in_fresh_processes", spy)
    model = FastTextClassifier(dim=8, epoch=5, tune=True, tune_seconds=2, word_ngrams=1, max_df=0.5, seed=0)
    model.fit(single_parts["train"], single_parts["valid"])
    assert seen == [(False, True), (True, False)]
    assert model.fit_info()["members"][0]["init_norm"] == 1.0 and model.fit_info()["autotune"]["kept"] == "defaults"


def test_fasttext_words_that_look_like_labels_stay_words():
    # "__label__x" in a text was read by fastText as a label: predicting failed on it (a traceback),
    # and "__label__1" trained the second label on every text that held it
    texts = ["good movie __label__x great", "bad film awful __label__1", "great fun good", "awful bad boring"] * 10
    data = make_dataset(texts, ["pos", "neg", "pos", "neg"] * 10, task="single", label_names=["neg", "pos"])
    model = FastTextClassifier(dim=8, epoch=5, word_ngrams=2, max_df=None, seed=0).fit(data)
    fitted = model.members_[0][1]
    assert sorted(fitted.labels) == ["__label__0", "__label__1"]
    assert "_label__x" in fitted.words and "_label__1" in fitted.words
    scores = model.predict_proba(["good __label__x", "__label__1", "bad"])
    assert scores.shape == (3, 2) and np.allclose(scores.sum(axis=1), 1)
    assert fasttext_clf.fasttext_line("A __label__b ___label__c") == "a _label__b ___label__c"


# --- word2vec: PPMI + SVD vectors (--set word2vec.trainer=ppmi-svd) -------------------------------

def test_ppmi_svd_vectors_place_words_of_the_same_contexts_together():
    from nlpkit.models.word2vec import ppmi_svd_vectors

    docs = [["the", "cat", "sat", "on", "the", "mat"], ["the", "dog", "sat", "on", "the", "log"],
            ["a", "cat", "and", "a", "dog", "ran"], ["stocks", "fell", "as", "bond", "yields", "rose"],
            ["bond", "prices", "fell", "as", "stocks", "rose"]] * 3
    kv = ppmi_svd_vectors(docs, min_count=2, window=2, dim=6, seed=0)
    assert "ran" in kv.key_to_index and kv.vector_size == 6  # every word seen twice or more
    assert kv.similarity("cat", "dog") > kv.similarity("cat", "bond")
    again = ppmi_svd_vectors(docs, min_count=2, window=2, dim=6, seed=0)
    assert np.array_equal(kv.vectors, again.vectors)  # no threads, no epochs: the same vectors for a seed


def test_ppmi_svd_windows_stop_at_document_ends():
    from nlpkit.models.word2vec import ppmi_svd_vectors

    # "x" and "y" only meet across a document boundary: no window may see them together
    kv = ppmi_svd_vectors([["x", "a"], ["y", "b"], ["x", "a"], ["y", "b"]], min_count=1, window=3, dim=4, seed=0)
    assert abs(kv.similarity("x", "y")) < 1e-6


def test_word2vec_ppmi_svd_trains_saves_and_reloads(tmp_path, single_parts, multi_parts):
    for parts in (single_parts, multi_parts):
        model = Word2VecClassifier(vector_size=8, trainer="ppmi-svd").fit(parts["train"])
        assert model.fit_info()["trainer"] == "ppmi-svd"
        model.save(tmp_path / parts["train"].task)
        back = Word2VecClassifier.load(tmp_path / parts["train"].task)
        np.testing.assert_allclose(back.predict_proba(parts["test"].texts), model.predict_proba(parts["test"].texts),
                                   rtol=1e-5, atol=1e-6)


def test_word2vec_ppmi_svd_without_any_shared_window_is_a_clear_error():
    ds = make_dataset(["alpha", "beta", "alpha"], ["a", "b", "a"], task="single")
    with pytest.raises(DataError, match="no two known words share a window"):
        Word2VecClassifier(vector_size=8, trainer="ppmi-svd").fit(ds)
