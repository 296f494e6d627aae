"""Near-duplicate texts: found within and across parts, recorded by `nlpkit split`, shown by
`nlpkit inspect`, and the report's scores without the test documents that have them."""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from typer.testing import CliRunner

from nlpkit.cli import app
from nlpkit.data import load_split, near_duplicate_record, near_duplicates
from nlpkit.data.near_dup import shingles
from nlpkit.metrics import METRICS
from nlpkit.report import build_report, render_html, render_markdown
from test_report import add_run

runner = CliRunner()
VOCAB = [f"w{i}" for i in range(400)]


def random_text(rng, n_words=30) -> str:
    return " ".join(rng.choice(VOCAB, size=n_words, replace=False))


def one_word_changed(text: str, position: int = 15) -> str:
    words = text.split()
    words[position] = "changed"
    return " ".join(words)


def paired(found, i: int, j: int) -> bool:
    """Whether texts i and j are near-duplicates in ``found``."""
    a, b = sorted((int(found.group[i]), int(found.group[j])))
    return a == b != -1 or (a, b) in set(map(tuple, found.pairs.tolist()))


# --- the function ---------------------------------------------------------------------------------

def test_one_word_changed_in_30_words_is_found_and_an_unrelated_text_is_not():
    rng = np.random.default_rng(0)
    text, other = random_text(rng), random_text(rng)
    texts = [text, one_word_changed(text), other]
    found = near_duplicates(texts)
    assert paired(found, 0, 1)
    assert not paired(found, 0, 2) and not paired(found, 1, 2)
    assert found.jaccard.tolist() == [pytest.approx(25 / 31)]  # 3 of 28 shingles differ on each side
    again = near_duplicates(texts)  # fixed MinHash seed: the same pairs every time
    assert again.pairs.tolist() == found.pairs.tolist() and again.group.tolist() == found.group.tolist()


def test_exact_duplicates_after_normalisation_and_short_texts():
    texts = ["Oil prices ROSE sharply, traders said.", "oil prices rose sharply traders said",
             "Good movie!", "good   movie", "good film", "!!!", "?"]
    found = near_duplicates(texts)
    assert paired(found, 0, 1)  # case, punctuation and whitespace do not matter
    assert paired(found, 2, 3)  # fewer words than a shingle: equal once normalised
    assert not paired(found, 2, 4)  # ... and nothing else: one word of two changed is another text
    assert not paired(found, 5, 6)  # no word at all: never a near-duplicate
    record = near_duplicate_record({"all": texts})
    assert record["within"]["all"] == {"pairs": 2, "docs": 4}


def test_counts_within_and_across_parts():
    rng = np.random.default_rng(1)
    a, b, c, d, e = (random_text(rng) for _ in range(5))
    parts = {
        "train": [a, b, a],  # a twice in train: one pair within train
        "valid": [one_word_changed(b), c],
        "test": [one_word_changed(a), d, c, e],  # near a (x2 in train), exact c (valid)
    }
    ids = {"train": ["t0", "t1", "t2"], "valid": ["v0", "v1"], "test": ["x0", "x1", "x2", "x3"]}
    record = near_duplicate_record(parts, ids)
    assert record["within"] == {"train": {"pairs": 1, "docs": 2}, "valid": {"pairs": 0, "docs": 0},
                                "test": {"pairs": 0, "docs": 0}}
    across = {tuple(entry["parts"]): entry for entry in record["across"]}
    assert list(across) == [("train", "valid"), ("train", "test"), ("valid", "test")]
    assert across[("train", "valid")]["pairs"] == 1
    assert across[("train", "valid")]["docs"] == {"train": 1, "valid": 1}
    assert across[("train", "test")]["pairs"] == 2  # both copies of a
    assert across[("train", "test")]["docs"] == {"train": 2, "test": 1}
    assert across[("valid", "test")]["docs"] == {"valid": 1, "test": 1}
    assert record["test_with_near_duplicates"] == {"total": 2, "in": {"train": 1, "valid": 1},
                                                   "ids": ["x0", "x2"], "ids_complete": True}
    capped = near_duplicate_record(parts, ids, max_ids=1)["test_with_near_duplicates"]
    assert capped["total"] == 2 and capped["ids"] == ["x0"] and capped["ids_complete"] is False


def brute_force(texts, threshold=0.8) -> dict[tuple[int, int], float]:
    """Every pair of distinct non-empty shingle sets (by first text index) with Jaccard >= threshold."""
    sets = {}
    for i, text in enumerate(texts):
        sets.setdefault(shingles(text), i)
    sets.pop(frozenset(), None)
    out = {}
    for (sa, i), (sb, j) in combinations(sets.items(), 2):
        jac = len(sa & sb) / len(sa | sb)
        if jac >= threshold:
            out[(i, j)] = jac
    return out


def found_pairs(found) -> dict[tuple[int, int], float]:
    """``found``'s pairs as first text indices of the two groups, with their Jaccard."""
    first = {}
    for i, g in enumerate(found.group.tolist()):
        first.setdefault(g, i)
    return {(first[a], first[b]): j for (a, b), j in zip(found.pairs.tolist(), found.jaccard.tolist())}


def synthetic_texts() -> tuple[list[str], list[tuple[int, int]], list[tuple[int, int]]]:
    """Texts of 40 distinct words (38 shingles) with near copies (one word changed: Jaccard 35/41 =
    0.854 in the middle, 37/39 = 0.949 at the end), half copies (the last 13 words changed: 25/51 =
    0.49), and a cluster of 150 texts with a different last word (57/59 = 0.966 between any two: one
    LSH bucket of 150 sets, 11,175 pairs, none may be dropped)."""
    rng = np.random.default_rng(5)
    texts, near, half = [], [], []
    for k in range(120):
        words = list(rng.choice(VOCAB, size=40, replace=False))
        texts.append(" ".join(words))
        base = len(texts) - 1
        edited = words.copy()
        edited[[20, 39, 30][k % 3]] = "edited"
        texts.append(" ".join(edited))
        near.append((base, len(texts) - 1))
        texts.append(" ".join(words[:27] + [f"x{k}y{i}" for i in range(13)]))
        half.append((base, len(texts) - 1))
    stem = " ".join(rng.choice(VOCAB, size=59, replace=False))
    texts += [f"{stem} last{i}" for i in range(150)]
    return texts, near, half


def test_finds_exactly_the_pairs_brute_force_finds():
    texts, near, half = synthetic_texts()
    truth = brute_force(texts)
    assert all(0.85 <= truth[pair] <= 0.95 for pair in near)  # the pairs were built as intended ...
    assert all(pair not in truth for pair in half)
    assert sum(pair[0] >= 360 for pair in truth) == 150 * 149 // 2
    found = found_pairs(near_duplicates(texts))
    assert found.keys() == truth.keys()  # ... and every one at >= 0.8 is found, no other
    assert all(found[pair] == pytest.approx(truth[pair]) for pair in truth)
    half_jaccard = [len(shingles(texts[a]) & shingles(texts[b])) / len(shingles(texts[a]) | shingles(texts[b]))
                    for a, b in half]
    assert all(0.45 <= jac <= 0.55 for jac in half_jaccard)


@pytest.mark.slow  # starts two interpreters
def test_same_pairs_every_time_and_in_any_process():
    texts, _, half = synthetic_texts()
    texts += ["Oil prices ROSE sharply", "oil prices rose sharply", "good film", "!!!"]
    # at 0.45, the half copies (J = 0.49) are candidates with probability 1 - (1 - 0.49**6)**21 = 0.25:
    # which of them are found depends on every hash, so a hash that changed between runs would show
    first, again = near_duplicates(texts, threshold=0.45), near_duplicates(texts, threshold=0.45)
    assert 0 < sum(pair in found_pairs(first) for pair in half) < len(half) / 2
    result = {"group": first.group.tolist(), "pairs": first.pairs.tolist(), "jaccard": first.jaccard.tolist()}
    assert {"group": again.group.tolist(), "pairs": again.pairs.tolist(), "jaccard": again.jaccard.tolist()} == result
    # str hashes change with PYTHONHASHSEED (and so the order shingles are met in): the result must not
    code = ("import json, sys; from nlpkit.data import near_duplicates; "
            "f = near_duplicates(json.load(sys.stdin), threshold=0.45); "
            "print(json.dumps({'group': f.group.tolist(), 'pairs': f.pairs.tolist(), 'jaccard': f.jaccard.tolist()}))")
    repo = Path(__file__).resolve().parent.parent
    for seed in ("0", "12345"):
        proc = subprocess.run([sys.executable, "-c", code], input=json.dumps(texts), capture_output=True, text=True,
                              check=True, env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": str(repo)})
        assert json.loads(proc.stdout) == result


def test_too_few_permutations_for_the_lsh_bands_is_refused():
    with pytest.raises(ValueError, match=r"num_perm must be at least 126 \(21 LSH bands of 6\), got 64"):
        near_duplicates(["a b c d"], num_perm=64)


# --- split, inspect, report --------------------------------------------------------------------------

def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture
def leaky_split(tmp_path):
    """A split from given train/test files: test docs te0 (one word changed) and te1 (the same text)
    repeat train documents; the other test docs are new."""
    rng = np.random.default_rng(2)
    train = [{"id": f"tr{i}", "text": random_text(rng), "label": "pos" if i % 2 else "neg"} for i in range(20)]
    test = [{"id": f"te{i}", "text": random_text(rng), "label": "pos" if i % 3 else "neg"} for i in range(10)]
    test[0]["text"], test[1]["text"] = one_word_changed(train[0]["text"]), train[1]["text"]
    out = tmp_path / "split"
    result = runner.invoke(app, ["split", "--train", str(write_jsonl(tmp_path / "train.jsonl", train)),
                                 "--test", str(write_jsonl(tmp_path / "test.jsonl", test)),
                                 "--valid-size", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def drop_record(split_dir):
    """The split as nlpkit wrote it before near-duplicates were recorded."""
    path = split_dir / "split.json"
    manifest = json.loads(path.read_text(encoding="utf-8"))
    del manifest["near_duplicates"]
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def test_split_records_near_duplicates_in_split_json(leaky_split):
    record = json.loads((leaky_split / "split.json").read_text(encoding="utf-8"))["near_duplicates"]
    assert record["settings"]["threshold"] == 0.8 and record["settings"]["seed"] == 1
    assert record["across"] == [{"parts": ["train", "test"], "pairs": 2, "docs": {"train": 2, "test": 2}}]
    assert record["within"] == {"train": {"pairs": 0, "docs": 0}, "test": {"pairs": 0, "docs": 0}}
    assert record["test_with_near_duplicates"] == {"total": 2, "in": {"train": 2}, "ids": ["te0", "te1"],
                                                   "ids_complete": True}
    assert load_split(leaky_split).manifest["near_duplicates"] == record


def test_inspect_shows_near_duplicates_of_a_dataset_file(tmp_path):
    rng = np.random.default_rng(3)
    text = random_text(rng)
    rows = [{"text": text, "label": "a"}, {"text": one_word_changed(text), "label": "b"},
            {"text": random_text(rng), "label": "a"}]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    result = runner.invoke(app, ["inspect", str(path)])
    assert result.exit_code == 0, result.output
    assert "near-duplicate texts" in result.stdout and "2 documents in 1 pair (Jaccard >= 0.8" in result.stdout
    stats = json.loads(runner.invoke(app, ["inspect", str(path), "--json"]).stdout)
    assert stats["near_duplicate_texts"]["pairs"] == 1 and stats["near_duplicate_texts"]["docs"] == 2
    assert stats["near_duplicate_texts"]["examples"][0]["ids"] == ["0", "1"]


@pytest.mark.parametrize("recorded", [True, False])
def test_inspect_shows_near_duplicates_across_the_parts_of_a_split(leaky_split, recorded):
    if not recorded:
        drop_record(leaky_split)
    result = runner.invoke(app, ["inspect", str(leaky_split)])
    assert result.exit_code == 0, result.output
    assert "parts" in result.stdout and "train 20, test 10" in result.stdout
    assert "train - test" in result.stdout and "within train" in result.stdout
    assert "2 test documents have near-duplicates in other parts (2 in train)" in result.stdout
    assert ("computed now" in result.stdout) is not recorded
    stats = json.loads(runner.invoke(app, ["inspect", str(leaky_split), "--json"]).stdout)
    assert stats["near_duplicates"]["recorded"] is recorded
    assert stats["near_duplicates"]["test_with_near_duplicates"]["ids"] == ["te0", "te1"]


@pytest.mark.parametrize("recorded", [True, False])
def test_report_warns_and_scores_without_the_near_duplicates(leaky_split, recorded):
    if not recorded:  # an old split folder: the report computes them itself
        drop_record(leaky_split)
    split = load_split(leaky_split)
    y = split.test.y.toarray().astype(bool)
    pred = y.copy()
    pred[5:] = ~pred[5:]  # right on the leaked te0, te1 (and te2..te4), wrong on the other five
    run = add_run(split, pred, model="tfidf-lr")
    report = build_report(leaky_split, metric="accuracy", n_boot=20, n_perm=20)
    leak = report["leakage"]
    assert leak["total"] == 2 and leak["in"] == {"train": 2} and leak["recorded"] is recorded
    assert leak["ids"] == ["te0", "te1"]
    keep = np.array([i not in ("te0", "te1") for i in split.test.ids])
    want = METRICS["accuracy"](sp.csr_matrix(y[keep], dtype=np.float64), sp.csr_matrix(pred[keep], dtype=np.float64))
    assert leak["scores_without"] == {run.name: pytest.approx(want)}
    assert want == pytest.approx(3 / 8) and report["rows"][0]["metric"]["point"] == pytest.approx(0.5)
    line = "2 of 10 test documents have near-duplicates in train (Jaccard >= 0.8 of 3-word shingles);" \
           " accuracy without them: tfidf-lr 0.375 (all: 0.500)"
    assert line in render_markdown(report)
    assert html.escape(line) in render_html(report)
    result = runner.invoke(app, ["report", str(leaky_split), "--metric", "accuracy", "--n-boot", "20",
                                 "--n-perm", "20"])
    assert result.exit_code == 0, result.output
    assert line in result.stderr


def test_report_without_near_duplicates_says_nothing(tmp_path):
    rng = np.random.default_rng(4)
    train = [{"id": f"tr{i}", "text": random_text(rng), "label": "pos" if i % 2 else "neg"} for i in range(12)]
    test = [{"id": f"te{i}", "text": random_text(rng), "label": "pos" if i % 2 else "neg"} for i in range(6)]
    out = tmp_path / "split"
    assert runner.invoke(app, ["split", "--train", str(write_jsonl(tmp_path / "tr.jsonl", train)), "--test",
                               str(write_jsonl(tmp_path / "te.jsonl", test)), "--valid-size", "0",
                               "--out", str(out)]).exit_code == 0
    split = load_split(out)
    add_run(split, split.test.y.toarray().astype(bool))
    report = build_report(out, n_boot=20, n_perm=20)
    assert report["leakage"]["total"] == 0 and report["leakage"]["scores_without"] == {}
    assert "near-duplicates" not in render_markdown(report)
