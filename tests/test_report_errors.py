"""`nlpkit report`: the error analysis (agreement counts, McNemar, examples, confusion matrices),
--no-examples, the smallest difference the test set can detect, and the one-sentence headline.

Runs are synthetic (predictions written into the registry by ``add_run``), so every expected count
is computed here from the same arrays.
"""

from __future__ import annotations

import json
import subprocess
from math import comb
from statistics import NormalDist

import numpy as np
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

from nlpkit.cli import app
from nlpkit.data import Dataset, write_split
from nlpkit.report import build_report, render_html, render_markdown
from nlpkit.report.error_analysis import mcnemar_exact
from test_report import add_run, make_split, noisy, noisy_single, row_of, y_test
from test_report_html import find_browser
from test_report_seeds import seeded

runner = CliRunner()
FAST = {"n_boot": 100, "n_perm": 100}


def text_of(doc_id: str) -> str:
    """A long, unique document text (cut in the report), no markdown or HTML characters."""
    n = int(doc_id[2:])
    return (f"Document {doc_id} says that quarterly shipments of widget model {n * 7919 % 1000} rose sharply "
            f"while the regional office in district {n % 17} reported steady demand and lower costs. ") * 4


def text_split(path, *, n_labels=5, n_train=200, n_test=150, task="single", label_names=None, seed=0):
    """A split whose documents have long texts (test_report.make_split's are a few characters)."""
    rng = np.random.default_rng(seed)
    names = label_names or [f"label{j}" for j in range(n_labels)]

    def part(prefix, n):
        if task == "single":
            y = np.eye(len(names), dtype=np.uint8)[rng.integers(0, len(names), n)]
        else:
            y = (rng.random((n, len(names))) < 0.3).astype(np.uint8)
        ids = [f"{prefix}{i}" for i in range(n)]
        return Dataset(ids=ids, texts=[text_of(i) for i in ids], y=sp.csr_matrix(y), label_names=list(names),
                       task=task, extra=None, source=None)

    return write_split(path, {"train": part("tr", n_train), "test": part("te", n_test)}, {"seed": seed})


@pytest.fixture
def split(tmp_path):
    return make_split(tmp_path / "split")


def errors_of(report, name) -> dict:
    return next(c for c in report["errors"]["comparisons"] if c["name"] == name)


def expected_counts(y, model_pred, base_pred) -> tuple[int, int, int, int]:
    m, b = (model_pred == y).all(axis=1), (base_pred == y).all(axis=1)
    return (int((m & b).sum()), int((m & ~b).sum()), int((~m & b).sum()), int((~m & ~b).sum()))


# --- McNemar ----------------------------------------------------------------------------------

def test_mcnemar_exact_matches_hand_computed_binomial_tails():
    # 2 vs 8 discordant documents: P(X <= 2) for X ~ Bin(10, 1/2) is (1 + 10 + 45) / 1024; two-sided doubles it.
    assert mcnemar_exact(2, 8) == pytest.approx(2 * (1 + 10 + 45) / 1024)
    assert mcnemar_exact(8, 2) == pytest.approx(112 / 1024)
    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32)  # all five one way: 2 * 0.5^5
    assert mcnemar_exact(3, 3) == pytest.approx(1.0)
    assert mcnemar_exact(0, 0) == 1.0  # no discordant document: no evidence either way


# --- error analysis ---------------------------------------------------------------------------

def test_single_label_error_analysis_counts_mcnemar_examples_and_confusion(tmp_path):
    split = text_split(tmp_path / "split")
    y = y_test(split)
    base_pred, good_pred, other_pred = noisy_single(y, 0.3, seed=1), noisy_single(y, 0.1, seed=2), noisy_single(y, 0.2, seed=3)
    base = add_run(split, base_pred, model="tfidf-lr", valid=0.7)
    good = add_run(split, good_pred, kind="finetune", model="transformer", valid=0.8)
    other = add_run(split, other_pred, model="fasttext", valid=0.6)
    add_run(split, noisy_single(y, 0.7, seed=4), model="majority", valid=0.2)
    report = build_report(split.path, **FAST)

    errors = report["errors"]
    assert errors["baseline"] == base.name and errors["examples"] is True
    # every other model but the majority floor, in leaderboard order
    assert [c["name"] for c in errors["comparisons"]] == [good.name, other.name]
    c = errors_of(report, good.name)
    both, only_m, only_b, neither = expected_counts(y, good_pred, base_pred)
    assert (c["both_right"], c["only_model_right"], c["only_baseline_right"], c["both_wrong"]) == (both, only_m, only_b, neither)
    n = only_m + only_b
    tail = sum(comb(n, k) for k in range(min(only_m, only_b) + 1)) / 2 ** n
    assert c["mcnemar_p"] == pytest.approx(min(1.0, 2 * tail))
    assert "label_differences" not in c  # multi-label only
    # two models against one baseline: Holm's step-down on the two McNemar p-values
    ps = [x["mcnemar_p"] for x in errors["comparisons"]]
    low, high = sorted(ps)
    holm = {low: min(1.0, 2 * low), high: min(1.0, max(2 * low, high))}
    assert [x["mcnemar_p_holm"] for x in errors["comparisons"]] == [pytest.approx(holm[p]) for p in ps]
    assert all(x["comparisons"] == 2 for x in errors["comparisons"])

    ids = split.test.ids
    position = {doc_id: i for i, doc_id in enumerate(ids)}
    right_m, right_b = (good_pred == y).all(axis=1), (base_pred == y).all(axis=1)
    for kind, want in (("model_right", right_m & ~right_b), ("baseline_right", ~right_m & right_b)):
        shown = c["examples"][kind]
        assert len(shown) == 3
        for d in shown:
            i = position[d["id"]]
            assert want[i]
            assert d["gold"] == [split.label_names[j] for j in np.flatnonzero(y[i])]
            assert d["model"] == [split.label_names[j] for j in np.flatnonzero(good_pred[i])]
            assert d["baseline"] == [split.label_names[j] for j in np.flatnonzero(base_pred[i])]
            assert len(d["model_scores"]) == 3 and d["model_scores"][0][1] == 0.75
            assert d["text"].endswith("…") and len(d["text"]) <= 301
            assert text_of(d["id"]).startswith(d["text"][:-1])
        # same confidence everywhere (add_run's 0.75): ties broken by id, so the choice is stable
        assert [d["id"] for d in shown] == sorted((ids[i] for i in np.flatnonzero(want)), key=str)[:3]

    # confusion matrices: the baseline and the best other model on the headline metric, gold rows
    cm = errors["confusion"]
    assert cm["labels"] == split.label_names
    assert [m["name"] for m in cm["matrices"]] == [base.name, good.name]
    for m, pred in zip(cm["matrices"], (base_pred, good_pred)):
        expected = np.zeros((5, 5), dtype=int)
        for gold, guess in zip(y.argmax(axis=1), pred.argmax(axis=1)):
            expected[gold, guess] += 1
        assert m["counts"] == expected.tolist()
        assert "no_single_prediction" not in m

    md, html = render_markdown(report), render_html(report)
    assert "## Errors against the baseline" in md and "### Confusion matrices" in md
    assert f"| transformer right | {both} | {only_m} |" in md
    assert "McNemar exact p" in md and "McNemar exact p" in html and "(Holm, 2 comparisons)" in md
    assert html.count('<table class="confusion">') == 2
    assert html.count("<svg") == 5  # the tables are HTML, not more charts


def test_confusion_matrix_counts_documents_without_one_predicted_label(tmp_path):
    split = make_split(tmp_path / "split", task="single", n_labels=4)
    y = y_test(split)
    pred = y.copy()
    pred[:5] = False  # no label predicted
    pred[5:8, :] = True  # every label
    base = add_run(split, pred, model="tfidf-lr")
    report = build_report(split.path, **FAST)
    m = report["errors"]["confusion"]["matrices"][0]
    assert m["name"] == base.name and report["errors"]["comparisons"] == []
    gold = y.argmax(axis=1)
    assert m["no_single_prediction"] == np.bincount(gold[:8], minlength=4).tolist()
    assert np.trace(np.array(m["counts"])) == len(y) - 8
    assert "no single label" in render_markdown(report) and "none / several" in render_html(report)


def test_no_confusion_matrix_beyond_30_labels_or_for_multi_label(tmp_path):
    many = make_split(tmp_path / "many", task="single", n_labels=31, n_test=200)
    add_run(many, y_test(many), model="tfidf-lr")
    assert build_report(many.path, **FAST)["errors"]["confusion"] is None
    multi = make_split(tmp_path / "multi", n_labels=4)
    add_run(multi, y_test(multi), model="tfidf-lr")
    assert build_report(multi.path, **FAST)["errors"]["confusion"] is None


def test_multi_label_error_analysis_on_exact_match_with_label_differences(tmp_path):
    split = text_split(tmp_path / "split", task="multi", n_labels=12)
    y = y_test(split)
    base_pred, model_pred = noisy(y, 0.08, seed=1), noisy(y, 0.03, seed=2)
    base = add_run(split, base_pred, model="tfidf-lr", valid=0.7)
    model = add_run(split, model_pred, kind="finetune", model="transformer", valid=0.8)
    report = build_report(split.path, **FAST)
    c = errors_of(report, model.name)
    assert c["baseline_run"] == base.name
    both, only_m, only_b, neither = expected_counts(y, model_pred, base_pred)
    assert (c["both_right"], c["only_model_right"], c["only_baseline_right"], c["both_wrong"]) == (both, only_m, only_b, neither)
    assert only_m > only_b and c["mcnemar_p"] < 0.05
    differ = (model_pred != base_pred).sum(axis=0)
    right = ((model_pred != base_pred) & (model_pred == y)).sum(axis=0)
    expected = sorted(range(12), key=lambda j: (-differ[j], split.label_names[j]))[:10]
    assert [d["label"] for d in c["label_differences"]] == [split.label_names[j] for j in expected]
    assert [(d["documents"], d["model_right"]) for d in c["label_differences"]] == [(differ[j], right[j]) for j in expected]
    assert report["errors"]["confusion"] is None
    shown = c["examples"]["model_right"]
    assert shown and all((model_pred[split.test.ids.index(d["id"])] == y[split.test.ids.index(d["id"])]).all()
                         for d in shown)
    assert "Labels where their predictions differ most: " in render_markdown(report)


def test_examples_show_the_models_most_confident_answers_first(tmp_path):
    split = make_split(tmp_path / "split", task="single", n_labels=3, n_test=60)
    y = y_test(split)
    wrong = np.roll(y, 1, axis=1)
    base_pred = y.copy()
    base_pred[:10] = wrong[:10]  # the baseline misses documents 0..9
    scores = np.where(y, 0.6, 0.2).astype(np.float32)
    scores[:10] = np.where(y[:10], 0.5 + 0.04 * np.arange(10)[:, None], 0.1)  # document 9 the surest
    add_run(split, base_pred, model="tfidf-lr")
    model = add_run(split, y, scores=scores, kind="finetune", model="transformer")
    c = errors_of(build_report(split.path, **FAST), model.name)
    assert [d["id"] for d in c["examples"]["model_right"]] == ["te9", "te8", "te7"]
    assert c["examples"]["baseline_right"] == []


def test_a_seed_group_is_analysed_on_its_first_seed_and_says_so(tmp_path):
    split = make_split(tmp_path / "split", n_labels=4)
    y = y_test(split)
    preds = {s: noisy(y, 0.05 + 0.01 * s, seed=s) for s in (3, 1, 2)}
    runs = {s: seeded(split, preds[s], seed=s, model="transformer", kind="finetune", valid=0.8) for s in preds}
    base = add_run(split, noisy(y, 0.1, seed=9), model="tfidf-lr", valid=0.7)
    report = build_report(split.path, baseline=base.name, **FAST)
    c = report["errors"]["comparisons"][0]
    assert c["run"] == runs[1].name and c["name"] == runs[1].name
    assert "seed 1" in c["note"] and "3 seeds" in c["note"]
    assert c["only_model_right"] == expected_counts(y, preds[1], noisy(y, 0.1, seed=9))[1]
    assert f"{c['label']}: its first seed's run only (seed 1" in render_markdown(report)


def test_no_examples_keeps_every_document_text_out_of_the_report_files(tmp_path):
    split = text_split(tmp_path / "split", task="single")
    y = y_test(split)
    add_run(split, noisy_single(y, 0.3, seed=1), model="tfidf-lr", valid=0.7)
    add_run(split, noisy_single(y, 0.1, seed=2), kind="finetune", model="transformer", valid=0.8)
    pieces = [p for t in split.test.texts for p in (t[:40], t[100:140])]

    def report_files(*flags):
        out = tmp_path / ("out" + "".join(flags))
        result = runner.invoke(app, ["report", str(split.path), "--out", str(out), "--n-boot", "100",
                                     "--n-perm", "100", *flags])
        assert result.exit_code == 0, result.output
        return {name: (out / name).read_text(encoding="utf-8") for name in ("report.json", "report.md", "report.html")}

    shown = report_files()
    for name, text in shown.items():
        assert sum(p in text for p in pieces) >= 6, name  # 3 + 3 examples, each with its opening words
    hidden = report_files("--no-examples")
    for name, text in hidden.items():
        assert not [p for p in pieces if p in text], name
    report = json.loads(hidden["report.json"])
    assert report["settings"]["examples"] is False and report["errors"]["examples"] is False
    assert all("examples" not in c for c in report["errors"]["comparisons"])
    assert report["errors"]["comparisons"][0]["only_model_right"] > 0  # the counts stay
    assert "Example documents left out (--no-examples)." in hidden["report.md"]


# --- the smallest detectable difference --------------------------------------------------------

Z = NormalDist().inv_cdf


def test_a_non_significant_comparison_says_what_the_test_set_can_detect(split):
    y = y_test(split)
    base = add_run(split, noisy(y, 0.10, seed=1), model="tfidf-lr")
    close = add_run(split, noisy(y, 0.10, seed=2), kind="finetune", model="transformer")
    far = add_run(split, noisy(y, 0.30, seed=3), model="fasttext")
    report = build_report(split.path, baseline=base.name, n_boot=300, n_perm=300)
    d = row_of(report, close.name)["diff"]
    assert not d["significant"]
    se = (d["hi"] - d["lo"]) / 2 / Z(0.975)
    assert d["detectable"] == pytest.approx((Z(0.975) + Z(0.8)) * se)
    assert 0.005 < d["detectable"] < 0.2
    verdict = row_of(report, close.name)["verdict"]
    assert verdict.endswith(f"; too few test documents to tell a difference smaller than ±{d['detectable']:.3f}")
    far_row = row_of(report, far.name)
    assert far_row["diff"]["significant"] and far_row["diff"]["detectable"] is None
    assert "too few" not in far_row["verdict"]
    assert report["settings"]["power"] == 0.8


def test_seed_aware_detectable_difference_uses_its_t_distribution(split):
    from scipy.stats import t

    y = y_test(split)
    for s in (1, 2, 3):
        seeded(split, noisy(y, 0.10, seed=s), seed=s, model="transformer", kind="finetune", valid=0.8)
    base = add_run(split, noisy(y, 0.10, seed=9), model="tfidf-lr", valid=0.7)
    report = build_report(split.path, baseline=base.name, n_boot=200, n_perm=200)
    row = next(r for r in report["rows"] if r.get("seeds"))
    d = row["diff"]
    assert not d["significant"]
    assert d["detectable"] == pytest.approx((t.ppf(0.975, d["df"]) + t.ppf(0.8, d["df"])) * d["se"])
    assert "too few test documents and seeds to tell a difference smaller than ±" in row["verdict"]


# --- the headline -----------------------------------------------------------------------------

def test_headline_is_the_best_other_model_on_valid_against_the_baseline(split):
    y = y_test(split)
    base = add_run(split, noisy(y, 0.20, seed=1), model="tfidf-lr", valid=0.7, docs_per_s=4000)
    lucky = add_run(split, noisy(y, 0.02, seed=2), model="fasttext", valid=0.6)  # best on test, not on valid
    chosen = add_run(split, noisy(y, 0.05, seed=3), kind="finetune", model="transformer", valid=0.9, docs_per_s=100)
    add_run(split, noisy(y, 0.5, seed=4), model="majority", valid=0.95)  # the floor is never the answer
    report = build_report(split.path, baseline=base.name, n_boot=300, n_perm=300)
    assert report["rows"][0]["name"] == lucky.name
    h = report["headline"]
    d = row_of(report, chosen.name)["diff"]
    assert h["model"] == chosen.name and h["baseline"] == base.name and h["valid_metric"] == 0.9
    assert (h["point"], h["lo"], h["hi"], h["p_holm"]) == (d["point"], d["lo"], d["hi"], d["p_holm"])
    assert h["significant"] and h["better"] and h["cost_ratio"] == pytest.approx(40.0)
    p = d["p_holm"]
    assert h["sentence"] == (
        f"transformer, the best of the other models on valid, is better than tfidf-lr: +{d['point']:.3f} micro-F1 "
        f"on the test set (95% interval +{d['lo']:.3f} to +{d['hi']:.3f}), "
        f"{'p < 0.001' if p < 0.001 else f'p = {p:.3f}'} (Holm, 2 comparisons), at 40× the prediction cost.")
    md = render_markdown(report)
    assert md.split("\n")[2] == f"**{h['sentence']}**"  # the first thing after the title
    html = render_html(report)
    assert html.index('<p class="headline">') < html.index("<h2>")


def test_headline_without_a_significant_difference_says_what_could_be_seen(split):
    y = y_test(split)
    base = add_run(split, noisy(y, 0.10, seed=1), model="tfidf-lr", valid=0.7)
    add_run(split, noisy(y, 0.10, seed=2), kind="finetune", model="transformer", valid=0.8)
    h = build_report(split.path, baseline=base.name, **FAST)["headline"]
    assert "is not measurably different from tfidf-lr" in h["sentence"]
    assert f"too few test documents to tell a difference smaller than ±{h['detectable']:.3f}" in h["sentence"]


def test_headline_of_seed_groups_uses_their_mean_valid_score_and_seeded_interval(split):
    y = y_test(split)
    base = add_run(split, noisy(y, 0.2, seed=9), model="tfidf-lr", valid=0.7)
    for s, v in zip((1, 2, 3), (0.95, 0.5, 0.5)):  # one lucky seed, a poor mean (0.65)
        seeded(split, noisy(y, 0.05, seed=s), seed=s, model="transformer", kind="finetune", valid=v)
    steady = add_run(split, noisy(y, 0.15, seed=7), model="fasttext", valid=0.8)
    h = build_report(split.path, baseline=base.name, **FAST)["headline"]
    assert h["model"] == steady.name and h["seeds"] == 1
    for s in (4, 5, 6):  # three more good seeds: mean valid (0.95 + 0.5 + 0.5 + 3 * 0.99) / 6 = 0.82 > 0.8
        seeded(split, noisy(y, 0.05, seed=s), seed=s, model="transformer", kind="finetune", valid=0.99)
    h = build_report(split.path, baseline=base.name, **FAST)["headline"]
    assert h["seeds"] == 6 and h["valid_metric"] == pytest.approx((0.95 + 0.5 + 0.5 + 3 * 0.99) / 6)
    assert "counting seed-to-seed variation" in h["sentence"]


def test_headline_when_only_the_baseline_ran(split, tmp_path):
    y = y_test(split)
    add_run(split, noisy(y, 0.1, seed=1), model="tfidf-lr")
    add_run(split, noisy(y, 0.5, seed=2), model="majority")
    out = tmp_path / "o"
    result = runner.invoke(app, ["report", str(split.path), "--out", str(out), "--n-boot", "50", "--n-perm", "50"])
    assert result.exit_code == 0, result.output
    sentence = "Only the baseline, tfidf-lr, ran on this split: there is no other model to compare it with yet."
    report = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert report["headline"]["sentence"] == sentence and report["headline"]["model"] is None
    assert result.stdout.lstrip().startswith(sentence)  # printed above the table
    assert sentence in (out / "report.md").read_text(encoding="utf-8")


def test_cli_prints_the_headline_above_the_table(split):
    y = y_test(split)
    add_run(split, noisy(y, 0.20, seed=1), model="tfidf-lr", valid=0.7)
    add_run(split, noisy(y, 0.03, seed=2), kind="finetune", model="transformer", valid=0.9)
    result = runner.invoke(app, ["report", str(split.path), "--n-boot", "100", "--n-perm", "100"])
    assert result.exit_code == 0, result.output
    first = result.stdout.lstrip().split("\n")[0]
    assert first.startswith("transformer, the best of the other models on valid, is better than tfidf-lr: +")


# --- layout -----------------------------------------------------------------------------------

@pytest.mark.slow  # starting a browser takes several seconds
@pytest.mark.skipif(find_browser() is None, reason="no Chromium/Chrome installed")
def test_error_section_does_not_widen_the_page_at_1400_px(tmp_path):
    """30 labels with long names, unbroken 'words' in the texts: the confusion tables and examples
    stay inside the page (its scroll width is the window's)."""
    names = [f"category-{j:02d}-with-a-rather-long-descriptive-name" for j in range(30)]
    split = text_split(tmp_path / "split", label_names=names, n_test=300)
    y = y_test(split)
    add_run(split, noisy_single(y, 0.4, seed=1), model="tfidf-lr", valid=0.7)
    add_run(split, noisy_single(y, 0.2, seed=2), kind="finetune", model="transformer", valid=0.8)
    report = build_report(split.path, **FAST)
    for c in report["errors"]["comparisons"]:
        for docs in c["examples"].values():
            for d in docs:
                d["text"] = "x" * 280  # one unbroken word
    html = render_html(report)
    assert html.count('<table class="confusion">') == 2
    probe = tmp_path / "probe.html"  # the report has no scripts; the probe adds one to measure it
    # page overflow, and the widest overflow inside the error section's cards (a hidden scrollbar)
    probe.write_text(html.replace("</body>", "<script>const cards = [...document.querySelectorAll('.errors .card')];"
                                  "document.title = 'scroll ' + document.documentElement.scrollWidth + ' client ' + "
                                  "document.documentElement.clientWidth + ' cards ' + cards.length + ' inside ' + "
                                  "Math.max(...cards.map(c => c.scrollWidth - c.clientWidth));</script></body>"),
                     encoding="utf-8")
    cmd = [find_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1000", "--dump-dom", probe.resolve().as_uri()]
    dom = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=180).stdout
    import re

    found = re.search(r"<title>scroll (\d+) client (\d+) cards (\d+) inside (-?\d+)</title>", dom)
    assert found, dom[-2000:]
    scroll, client, cards, inside = map(int, found.groups())
    assert client > 1300 and scroll <= client
    assert cards == 3 and inside <= 0  # one comparison, two confusion matrices: nothing scrolls
