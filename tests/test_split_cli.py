"""`nlpkit split` end to end on the bundled samples: folders, determinism, modes, and every error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from nlpkit.cli import app
from nlpkit.data import load_split

runner = CliRunner()


def run(*args):
    return runner.invoke(app, ["split", *map(str, args)])


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.fixture
def reuters(data_dir) -> Path:
    return data_dir / "reuters_sample.jsonl"


@pytest.fixture
def agnews(data_dir) -> Path:
    return data_dir / "agnews_sample.jsonl"


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_split_folder_and_manifest(reuters, tmp_path):
    out = tmp_path / "s"
    result = run(reuters, "--out", out, "--seed", 3)
    assert result.exit_code == 0, result.output
    split = load_split(out)
    assert {n: len(ds) for n, ds in split.parts.items()} == {"train": 1400, "valid": 200, "test": 400}
    ids = [i for ds in split.parts.values() for i in ds.ids]
    assert len(ids) == len(set(ids)) == 2000
    m = split.manifest
    assert m["method"] == "iterative" and m["order"] == 1 and m["seed"] == 3
    assert len(m["sources"]["input"]["sha256"]) == 64
    assert m["sizes"]["requested"] == m["sizes"]["obtained"] == {"train": 1400, "valid": 200, "test": 400}
    assert m["quality"]["FLZ_avoidable"] == 0
    assert m["quality"]["LD"] < m["random_quality"]["LD"]
    assert "modapte" in split.test.extra.columns  # original columns kept
    assert "Quality" in result.stdout and "random split" in result.stdout


def test_byte_identical_reruns(reuters, tmp_path):
    for order in (1, 2):
        a, b = tmp_path / f"a{order}", tmp_path / f"b{order}"
        assert run(reuters, "--out", a, "--order", order, "--seed", 7).exit_code == 0
        assert run(reuters, "--out", b, "--order", order, "--seed", 7).exit_code == 0
        assert files_of(a) == files_of(b)
    c = tmp_path / "c"
    assert run(reuters, "--out", c, "--seed", 8).exit_code == 0
    assert files_of(c)["test.jsonl"] != files_of(tmp_path / "a1")["test.jsonl"]


def test_json_and_show_labels(reuters, tmp_path):
    result = run(reuters, "--out", tmp_path / "s", "--json", "--show-labels", "--test-size", "300", "--valid-size", "0")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["parts"]["obtained"] == {"train": 1700, "test": 300}
    assert info["label_counts"]["earn"]["train"] + info["label_counts"]["earn"]["test"] > 0
    table = run(reuters, "--out", tmp_path / "t", "--show-labels")
    assert "Documents per label and part" in table.stdout and "earn" in table.stdout


def test_rare_labels_warned(reuters, tmp_path):
    result = run(reuters, "--out", tmp_path / "s")
    assert result.exit_code == 0
    assert "fewer documents than the 3 parts" in result.stderr


def test_folds_each_doc_once_with_held_out_test(reuters, tmp_path):
    out = tmp_path / "k"
    result = run(reuters, "--out", out, "--folds", 5, "--test-size", 0.2)
    assert result.exit_code == 0, result.output
    split = load_split(out)
    assert sorted(split.parts) == ["fold0", "fold1", "fold2", "fold3", "fold4", "test"]
    assert len(split.test) == 400 and [len(f) for f in split.folds] == [320] * 5
    ids = [i for ds in split.parts.values() for i in ds.ids]
    assert len(ids) == len(set(ids)) == 2000
    plain = run(reuters, "--out", tmp_path / "k2", "--folds", 4)
    assert plain.exit_code == 0
    assert sorted(load_split(tmp_path / "k2").parts) == ["fold0", "fold1", "fold2", "fold3"]


def test_single_label_stratified(agnews, tmp_path):
    out = tmp_path / "ag"
    result = run(agnews, "--out", out, "--valid-size", 0, "--order", 2)
    assert result.exit_code == 0, result.output
    assert "every document has at most one label; using --order 1" in result.stderr
    split = load_split(out)
    assert split.task == "single" and split.manifest["order"] == 1
    train, test = np.asarray(split.train.y.sum(axis=0)).ravel(), np.asarray(split.test.y.sum(axis=0)).ravel()
    assert np.abs(test - 0.2 * (train + test)).max() <= 4  # the classes keep their shares


def test_skmultilearn_and_random_methods(reuters, tmp_path):
    for method in ("skmultilearn", "random"):
        result = run(reuters, "--out", tmp_path / method, "--method", method, "--valid-size", 0)
        assert result.exit_code == 0, result.output
        assert load_split(tmp_path / method).manifest["method"] == method


def test_train_test_mode_carves_valid(reuters, tmp_path):
    rows = [json.loads(line) for line in reuters.read_text(encoding="utf-8").splitlines()]
    train_rows = [r for r in rows if r["modapte"] == "train"]
    test_rows = [r for r in rows if r["modapte"] == "test"]
    test_rows[0] = dict(test_rows[0], labels=["only-in-test"])
    tr, te = write_jsonl(tmp_path / "tr.jsonl", train_rows), write_jsonl(tmp_path / "te.jsonl", test_rows)
    out = tmp_path / "s"
    result = run("--train", tr, "--test", te, "--out", out, "--valid-size", 0.1)
    assert result.exit_code == 0, result.output
    split = load_split(out)
    assert len(split.test) == len(test_rows)
    assert len(split.valid) == round(0.1 * len(train_rows))
    assert len(split.train) + len(split.valid) == len(train_rows)
    assert "only-in-test" in split.label_names  # label space = sorted union
    assert split.label_names == sorted(split.label_names)
    assert set(split.manifest["sources"]) == {"train", "test"}
    # an explicit valid file is used as is
    va = write_jsonl(tmp_path / "va.jsonl", train_rows[:50])
    tr2 = write_jsonl(tmp_path / "tr2.jsonl", train_rows[50:])
    result = run("--train", tr2, "--test", te, "--valid", va, "--out", tmp_path / "s2")
    assert result.exit_code == 0, result.output
    assert [len(load_split(tmp_path / "s2").parts[p]) for p in ("train", "valid", "test")] == [
        len(train_rows) - 50, 50, len(test_rows)]


# --- bad input: one line, exit 1, nothing written ------------------------------------------------


def check_error(result, fragment, out: Path | None = None):
    assert result.exit_code == 1, result.output
    assert fragment in result.stderr
    assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.output
    if out is not None:
        assert not out.exists()


def test_error_output_exists(reuters, tmp_path):
    out = tmp_path / "s"
    assert run(reuters, "--out", out).exit_code == 0
    before = files_of(out)
    check_error(run(reuters, "--out", out, "--seed", 1), "output folder exists")
    assert files_of(out) == before
    assert run(reuters, "--out", out, "--seed", 1, "--overwrite").exit_code == 0
    assert files_of(out) != before


def test_error_sizes_do_not_add_up(reuters, tmp_path):
    out = tmp_path / "s"
    check_error(run(reuters, "--out", out, "--test-size", 0.7, "--valid-size", 0.5), "add up", out)
    check_error(run(reuters, "--out", out, "--test-size", 1500, "--valid-size", 500), "no document for train", out)
    check_error(run(reuters, "--out", out, "--test-size", 1.5), "--test-size 1.5", out)
    check_error(run(reuters, "--out", out, "--test-size", "abc"), "not a number", out)


def test_error_more_folds_than_documents(tmp_path):
    f = write_jsonl(tmp_path / "d.jsonl", [{"id": str(i), "text": f"t{i}", "labels": ["a"]} for i in range(4)])
    out = tmp_path / "s"
    check_error(run(f, "--out", out, "--folds", 5), "--folds 5 but only 4 documents", out)
    check_error(run(f, "--out", out, "--folds", 3, "--valid-size", 0.1), "--valid-size does not go with --folds", out)


def test_error_single_document(tmp_path):
    f = write_jsonl(tmp_path / "one.jsonl", [{"id": "1", "text": "hello", "labels": ["a"]}])
    check_error(run(f, "--out", tmp_path / "s"), "only 1 document", tmp_path / "s")


def test_error_no_labels(tmp_path):
    f = write_jsonl(tmp_path / "nolab.jsonl", [{"id": str(i), "text": f"t{i}", "labels": []} for i in range(5)])
    check_error(run(f, "--out", tmp_path / "s"), "no labels at all", tmp_path / "s")


def test_error_bad_method_and_order(reuters, tmp_path):
    out = tmp_path / "s"
    check_error(run(reuters, "--out", out, "--method", "magic"), "unknown --method 'magic'", out)
    check_error(run(reuters, "--out", out, "--order", 3), "--order 3", out)


def test_error_argument_combinations(reuters, tmp_path):
    out = tmp_path / "s"
    check_error(run(reuters), "--out DIR")
    check_error(run("--out", out), "nothing to split", out)
    check_error(run("--train", reuters, "--out", out), "--train and --test go together", out)
    check_error(run(reuters, "--train", reuters, "--test", reuters, "--out", out), "not both", out)
    check_error(run("--train", reuters, "--test", reuters, "--folds", 3, "--out", out), "--folds needs INPUT", out)
    check_error(run(tmp_path / "missing.jsonl", "--out", out), "not found", out)


# --- review fixes: bad values, part names, dropped rows, overlap, overwrite ----------------------


def test_error_negative_seed(reuters, tmp_path):
    out = tmp_path / "s"
    check_error(run(reuters, "--out", out, "--seed", -1), "--seed must be a whole number from 0 to 2147483647; got -1.", out)


def test_error_lone_surrogate_is_named_before_anything_is_written(agnews, tmp_path):
    path = tmp_path / "d.jsonl"
    lines = agnews.read_text(encoding="utf-8").splitlines()[:20]
    path.write_text("\n".join(lines) + '\n{"id": "s1", "text": "hi \\ud800 there", "label": "World"}\n',
                    encoding="utf-8")
    out = tmp_path / "s"
    check_error(run(path, "--out", out), f"{path}:21:26: '\\ud800' is a lone surrogate escape", out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl"]


def test_error_deep_nesting_names_the_line(tmp_path):
    rows = [json.dumps({"id": str(i), "text": f"t{i}", "labels": ["a"]}) for i in range(6)]
    rows[2] = '{"id": "2", "text": "t", "labels": ["a"], "x": ' + "[" * 100_000 + "]" * 100_000 + "}"
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    check_error(run(path, "--out", tmp_path / "s"), f"{path}:3:", tmp_path / "s")


def test_error_parts_are_named_not_numbered(agnews, tmp_path):
    out = tmp_path / "s"
    check_error(run(agnews, "--test-size", "1e-9", "--out", out), "the test part would get no document", out)
    small = write_jsonl(tmp_path / "d.jsonl", [{"id": str(i), "text": f"t{i}", "label": "a"} for i in range(3)])
    check_error(run(small, "--out", out), "the valid part would get no document (--valid-size 0.1 of 3", out)


def test_drop_empty_warns_and_records_the_count(agnews, tmp_path):
    rows = [json.loads(line) for line in agnews.read_text(encoding="utf-8").splitlines()[:50]]
    rows[3]["text"], rows[9]["label"] = "", None
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    out = tmp_path / "s"
    result = run(path, "--out", out, "--drop-empty")
    assert result.exit_code == 0, result.output
    assert f"--drop-empty dropped 2 of 50 rows of {path}" in " ".join(result.stderr.split())
    assert load_split(out).manifest["sources"]["input"]["n_dropped"] == 2


def test_train_and_test_files_that_share_documents(agnews, tmp_path):
    rows = [json.loads(line) for line in agnews.read_text(encoding="utf-8").splitlines()[:300]]
    tr = write_jsonl(tmp_path / "tr.jsonl", rows[:200])
    te = write_jsonl(tmp_path / "te.jsonl", rows[150:])
    out = tmp_path / "s"
    check_error(run("--train", tr, "--test", te, "--out", out),
                f"id '{rows[150]['id']}' is in both the train file {tr} and the test file {te} (50 shared id(s))", out)
    # same texts under other ids: maybe different documents (short texts repeat), so a warning
    te2 = write_jsonl(tmp_path / "te2.jsonl", [dict(r, id=f"n{r['id']}") for r in rows[150:]])
    result = run("--train", tr, "--test", te2, "--out", out)
    assert result.exit_code == 0, result.output
    assert "50 test document(s) of" in result.stderr and "same text as a train document" in result.stderr
    # files without an id column number their rows from 0 each: those numbers are not compared
    plain = [{k: v for k, v in r.items() if k != "id"} for r in rows]
    tr3 = write_jsonl(tmp_path / "tr3.jsonl", plain[:150])
    te3 = write_jsonl(tmp_path / "te3.jsonl", plain[150:])
    result = run("--train", tr3, "--test", te3, "--out", tmp_path / "s3")
    assert result.exit_code == 0, result.output
    assert "same text" not in result.stderr


def test_error_sizes_of_parts_given_as_files(reuters, tmp_path):
    out = tmp_path / "s"
    check_error(run("--train", reuters, "--test", reuters, "--test-size", 0.3, "--out", out),
                "--test-size does not go with --test FILE", out)
    check_error(run("--train", reuters, "--test", reuters, "--valid", reuters, "--valid-size", 0.1, "--out", out),
                "--valid-size does not go with --valid FILE", out)


def test_overwrite_warns_when_it_removes_reports(agnews, tmp_path):
    out = tmp_path / "s"
    assert run(agnews, "--out", out, "--seed", 1).exit_code == 0
    result = run(agnews, "--out", out, "--seed", 2, "--overwrite")
    assert result.exit_code == 0 and "Warning" not in result.stderr  # nothing but the split was there
    (out / "report").mkdir()
    (out / "report" / "report.html").write_text("old")
    result = run(agnews, "--out", out, "--seed", 3, "--overwrite")
    assert result.exit_code == 0, result.output
    warning = " ".join(result.stderr.split())
    assert "removed report/ from it (old reports); runs recorded on the old split no longer match" in warning
    assert not (out / "report").exists()
    (out / "report").mkdir()
    result = run(agnews, "--out", out, "--seed", 3, "--overwrite")
    assert "removed report/ from it (old reports); the split itself is unchanged" in " ".join(result.stderr.split())


def test_warnings_show_brackets_literally(tmp_path):
    rows = [{"id": str(i), "text": f"t{i}", "labels": ["x"]} for i in range(6)]
    rows[1]["labels"] = ["[/x]"]  # a rare label named like a closing markup tag
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    result = run(path, "--out", tmp_path / "s", "--test-size", 2, "--valid-size", 1)
    assert result.exit_code == 0, result.output
    assert "cannot be in every part: [/x]" in result.stderr
