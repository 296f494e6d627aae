"""Input that used to pass silently or with a misleading hint (issue #20): byte-order marks, gzip,
duplicate columns, missing-value markers, a --label-sep that never occurs, and official parts
whose test labels train lacks."""

from __future__ import annotations

import codecs
import gzip
import json
import warnings
from pathlib import Path

import pytest
from typer.testing import CliRunner

from nlpkit.cli import app
from nlpkit.data import DataWarning, DatasetOptions, load_split, read_dataset

runner = CliRunner()

ROWS = [{"id": f"d{i}", "text": f"document number {i} about {lab}", "label": lab}
        for i, lab in enumerate(["sport", "tech", "café", "sport", "tech", "café"])]
JSONL = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS)
CSV = "id,text,label\n" + "".join(f"{r['id']},{r['text']},{r['label']}\n" for r in ROWS)
FASTTEXT = "".join(f"__label__{r['label']} {r['text']}\n" for r in ROWS)


def cli(*args):
    return runner.invoke(app, [*map(str, args)])


def inspect_json(path, *args) -> dict:
    result = cli("inspect", path, "--json", *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def assert_error(result, *fragments):
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("Error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def write(path: Path, data: str | bytes) -> Path:
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


# --- byte-order marks ----------------------------------------------------------------------------

BOMS = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE,
        "utf-32-le": codecs.BOM_UTF32_LE, "utf-32-be": codecs.BOM_UTF32_BE}


@pytest.mark.parametrize("encoding", sorted(BOMS))
@pytest.mark.parametrize("name, content", [("d.jsonl", JSONL), ("d.csv", CSV)], ids=["jsonl", "csv"])
def test_utf16_and_utf32_with_a_byte_order_mark_are_read(tmp_path, encoding, name, content):
    path = write(tmp_path / name, BOMS[encoding] + content.encode(encoding))
    stats = inspect_json(path)
    assert stats["n_docs"] == 6
    assert sorted(f["label"] for f in stats["label_frequency_head"]) == ["café", "sport", "tech"]
    assert read_dataset(path).ids[0] == "d0"  # the mark is not part of the first column name or key
    # an --encoding that agrees with the mark reads the same
    assert inspect_json(path, "--encoding", encoding)["n_docs"] == 6
    assert inspect_json(path, "--encoding", encoding[:6])["n_docs"] == 6  # utf-16 / utf-32


def test_an_encoding_that_contradicts_the_byte_order_mark_is_an_error(tmp_path):
    path = write(tmp_path / "d.jsonl", codecs.BOM_UTF16_LE + JSONL.encode("utf-16-le"))
    assert_error(cli("inspect", path, "--encoding", "latin-1"), str(path),
                 "starts with a UTF-16-LE byte-order mark", "--encoding latin-1 was given",
                 "pass --encoding utf-16-le")
    assert_error(cli("inspect", path, "--encoding", "utf-32"), "pass --encoding utf-16-le")


def test_utf16_without_a_mark_is_named_not_sent_to_latin1(tmp_path):
    path = write(tmp_path / "d.jsonl", JSONL.encode("utf-16-le"))
    assert_error(cli("inspect", path), str(path), "looks like UTF-16-LE text without a byte-order mark",
                 "pass --encoding utf-16-le")
    assert inspect_json(path, "--encoding", "utf-16-le")["n_docs"] == 6


def test_a_file_that_is_not_text_is_named(tmp_path):
    import zipfile

    path = tmp_path / "d.csv"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("sheet.xml", bytes(range(256)) * 20)
    assert_error(cli("inspect", path), "it is a ZIP archive", "export the data as CSV")
    result = cli("inspect", path)
    assert "--encoding latin-1" not in result.stderr  # that hint is for 8-bit text only


# --- gzip --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, content, extra",
    [
        ("d.jsonl", JSONL, []),  # gzip data under a plain name: known by its magic bytes
        ("d.jsonl.gz", JSONL, []),
        ("d.csv.gz", CSV, []),
        ("d.tsv.gz", CSV.replace(",", "\t"), []),
        ("d.txt.gz", FASTTEXT, []),
        ("d.gz", JSONL, ["--format", "jsonl"]),
    ],
    ids=["gzip-named-jsonl", "jsonl.gz", "csv.gz", "tsv.gz", "fasttext-txt.gz", "gz-with-format"],
)
def test_gzip_input_is_read_by_inspect(tmp_path, name, content, extra):
    path = write(tmp_path / name, gzip.compress(content.encode("utf-8")))
    stats = inspect_json(path, *extra)
    assert stats["n_docs"] == 6 and stats["n_labels"] == 3


def test_gzip_input_is_split(tmp_path):
    data = write(tmp_path / "d.jsonl.gz", gzip.compress(JSONL.encode("utf-8")))
    result = cli("split", data, "--out", tmp_path / "s", "--test-size", 2, "--valid-size", 0)
    assert result.exit_code == 0, result.output
    split = load_split(tmp_path / "s")
    assert sorted(split.train.ids + split.test.ids) == sorted(r["id"] for r in ROWS)
    train = write(tmp_path / "tr.csv.gz", gzip.compress(CSV.encode("utf-8")))
    test = write(tmp_path / "te.jsonl", gzip.compress(JSONL.replace('"d', '"t').encode("utf-8")))
    result = cli("split", "--train", train, "--test", test, "--out", tmp_path / "s2", "--valid-size", 0)
    assert result.exit_code == 0, result.output
    assert len(load_split(tmp_path / "s2").test) == 6


def test_truncated_gzip_is_one_line_error(tmp_path):
    whole = gzip.compress((JSONL * 50).encode("utf-8"))
    path = write(tmp_path / "d.jsonl.gz", whole[: len(whole) // 2])
    assert_error(cli("inspect", path), str(path), "gzip data ends early: the file is truncated; copy it again")


def test_gzip_wrapped_parquet_is_named(tmp_path):
    import pandas as pd

    pd.DataFrame(ROWS).to_parquet(tmp_path / "d.parquet")
    path = write(tmp_path / "w.parquet", gzip.compress((tmp_path / "d.parquet").read_bytes()))
    assert_error(cli("inspect", path), "is gzip-compressed Parquet; decompress it")


def test_pretraining_corpus_reads_gzip(tmp_path):
    from nlpkit.pretrain.corpus import read_corpus

    lines = write(tmp_path / "c.txt.gz", gzip.compress("".join(f"line {i}\n" for i in range(10)).encode("utf-8")))
    corpus = read_corpus(lines, heldout_docs=2)
    assert corpus.kind == "text-file" and sorted(corpus.train + corpus.heldout) == sorted(f"line {i}" for i in range(10))
    data = write(tmp_path / "c.jsonl.gz", gzip.compress(JSONL.encode("utf-8")))
    corpus = read_corpus(data, heldout_docs=1)
    assert corpus.kind == "dataset" and len(corpus.train) == 5
    folder = tmp_path / "texts"
    folder.mkdir()
    write(folder / "a.txt.gz", gzip.compress(codecs.BOM_UTF16_LE + "first document".encode("utf-16-le")))
    write(folder / "b.txt", "second document")
    corpus = read_corpus(folder, heldout_docs=1)
    assert sorted(corpus.train + corpus.heldout) == ["first document", "second document"]


# --- duplicate column names --------------------------------------------------------------------------


@pytest.mark.parametrize("name, sep", [("d.csv", ","), ("d.tsv", "\t")])
def test_duplicate_column_names_are_an_error(tmp_path, name, sep):
    header = sep.join(["id", "text", "text", "label"])
    row = sep.join(["1", "first", "second", "x"])
    path = write(tmp_path / name, f"{header}\n{row}\n")
    assert_error(cli("inspect", path), f"duplicate column name in the header of {path}: 'text' (columns 2, 3)",
                 "rename one")
    # a column really named "text.1" (what pandas renamed the second copy to) is a name like any other
    ok = write(tmp_path / f"ok{name}", f"{sep.join(['id', 'text', 'text.1', 'label'])}\n{row}\n")
    assert inspect_json(ok)["n_docs"] == 1


def test_duplicate_parquet_columns_are_an_error(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_arrays([pa.array(["a"]), pa.array(["b"]), pa.array(["x"])], names=["text", "text", "label"])
    pq.write_table(table, tmp_path / "d.parquet")
    assert_error(cli("inspect", tmp_path / "d.parquet"), "duplicate column name", "'text' (columns 1, 2)")


# --- missing-value markers ---------------------------------------------------------------------------


def labelled_csv(tmp_path, labels, name="d.csv") -> Path:
    return write(tmp_path / name, "text,label\n" + "".join(f"doc {i},{lab}\n" for i, lab in enumerate(labels)))


@pytest.mark.parametrize("marker", ["NaN", "nan", "null", "NULL"])
def test_a_marker_label_is_missing_in_csv(tmp_path, marker):
    path = labelled_csv(tmp_path, ["a", "b", marker, "a"])
    assert_error(cli("inspect", path), f"missing label at line 4 of {path} (column 'label' holds '{marker}'",
                 "--drop-empty", "--na-values")
    stats = inspect_json(path, "--drop-empty")
    assert stats["n_docs"] == 3 and stats["n_dropped"] == 1 and stats["n_labels"] == 2


def test_a_marker_label_is_missing_in_jsonl_and_fasttext(tmp_path):
    path = write(tmp_path / "d.jsonl", '{"text": "a", "label": "x"}\n{"text": "b", "label": "null"}\n')
    assert_error(cli("inspect", path), "missing label at line 2")
    assert inspect_json(path, "--drop-empty")["n_docs"] == 1
    ft = write(tmp_path / "d.txt", "__label__x first\n__label__nan second\n__label__x __label__NaN third\n")
    assert_error(cli("inspect", ft), "missing label at line 2")
    assert read_dataset(ft, DatasetOptions(drop_empty=True)).label_lists() == [["x"], ["x"]]


def test_a_marker_in_a_label_list(tmp_path):
    # a piece of a delimited string is dropped, as empty pieces are; a list element is an error, as null is
    path = labelled_csv(tmp_path, ["a|NaN", "b", "NaN|null"])
    with pytest.raises(Exception, match="missing label at line 4"):
        read_dataset(path, DatasetOptions(label_sep="|"))
    ds = read_dataset(path, DatasetOptions(label_sep="|", drop_empty=True))
    assert ds.label_lists() == [["a"], ["b"]]
    lists = write(tmp_path / "l.jsonl", '{"text": "a", "labels": ["x"]}\n{"text": "b", "labels": ["x", "NaN"]}\n')
    assert_error(cli("inspect", lists), "label list at line 2", "holds the missing-value marker 'NaN'")


def test_na_values_changes_the_list(tmp_path):
    path = labelled_csv(tmp_path, ["a", "NaN", "missing", "b"])
    stats = inspect_json(path, "--na-values", "")  # only the empty cell is missing: "NaN" is a class
    assert {f["label"] for f in stats["label_frequency_head"]} == {"a", "NaN", "missing", "b"}
    stats = inspect_json(path, "--na-values", "missing, ?", "--drop-empty")
    assert stats["n_dropped"] == 1 and {f["label"] for f in stats["label_frequency_head"]} == {"a", "NaN", "b"}
    assert_error(cli("inspect", labelled_csv(tmp_path, ["a", "", "b"], "e.csv"), "--na-values", ""),
                 "missing label at line 3")  # the empty cell stays missing


def test_na_none_and_n_a_are_classes(tmp_path):
    path = labelled_csv(tmp_path, ["NA", "None", "N/A", "NA"])
    stats = inspect_json(path)
    assert stats["n_dropped"] == 0 and {f["label"] for f in stats["label_frequency_head"]} == {"NA", "None", "N/A"}


def test_na_values_are_recorded_in_split_json(tmp_path):
    path = labelled_csv(tmp_path, ["a", "NaN", "b", "a", "b", "NaN"])
    result = cli("split", path, "--out", tmp_path / "s", "--na-values", "", "--test-size", 2, "--valid-size", 0)
    assert result.exit_code == 0, result.output
    split = load_split(tmp_path / "s")
    assert split.manifest["options"]["dataset"]["na_values"] == [""] and "NaN" in split.label_names
    assert_error(cli("split", path, "--out", tmp_path / "s2"), "missing label at line 3")


def test_na_values_in_python_must_be_strings(tmp_path):
    from nlpkit.errors import ConfigError

    path = labelled_csv(tmp_path, ["a", "x", "b"])
    with pytest.raises(ConfigError, match="--na-values must be strings"):
        read_dataset(path, DatasetOptions(na_values=(None,)))
    assert len(read_dataset(path, DatasetOptions(na_values="x", drop_empty=True))) == 2  # "x" read as "x" only


# --- --label-sep that never occurs -------------------------------------------------------------------


def test_label_sep_that_occurs_in_no_label_names_the_one_that_does(tmp_path):
    labels = ["tech|news", "sport", "news|sport", "tech|news", "sport|news"]
    path = labelled_csv(tmp_path, labels)
    result = cli("inspect", path, "--json", "--label-sep", ";")
    assert result.exit_code == 0, result.output
    assert result.stderr.count("Warning:") == 1, result.stderr
    assert (f"--label-sep ';' occurs in no label of {path} (column 'label'), but '|' occurs in 4 of them:"
            f" did you mean --label-sep '|'?") in " ".join(result.stderr.split())
    assert "Warning" not in cli("inspect", path, "--label-sep", "|").stderr


def test_label_sep_that_occurs_in_no_label_warns(tmp_path):
    path = labelled_csv(tmp_path, ["tech", "sport", "news"])
    result = cli("inspect", path, "--label-sep", ";")
    assert result.exit_code == 0, result.output
    assert "--label-sep ';' occurs in no label" in result.stderr and "kept whole" in result.stderr
    assert "did you mean" not in result.stderr
    with pytest.warns(DataWarning, match="occurs in no label"):  # the library warns; the CLI shows it
        read_dataset(path, DatasetOptions(label_sep=";"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_dataset(path)  # no --label-sep, no warning


# --- official parts whose held-out labels train lacks --------------------------------------------------


def official_parts(tmp_path) -> tuple[Path, Path]:
    topics = {"fruit": "apple banana cherry", "engine": "piston valve oil"}
    train = [{"id": f"tr{i}", "text": f"{topics[lab]} {i}", "label": lab}
             for i, lab in enumerate(["fruit", "engine"] * 10)]
    test = [{"id": f"te{i}", "text": f"goal football {i}", "label": "sport"} for i in range(5)]
    test += [{"id": f"te{i + 5}", "text": f"{topics[lab]} {i + 5}", "label": lab} for i, lab in enumerate(["fruit", "engine"] * 2)]
    return (write(tmp_path / "train.jsonl", "".join(json.dumps(r) + "\n" for r in train)),
            write(tmp_path / "test.jsonl", "".join(json.dumps(r) + "\n" for r in test)))


def test_labels_missing_from_train_warn_in_split_and_baseline(tmp_path):
    train, test = official_parts(tmp_path)
    out = tmp_path / "s"
    result = cli("split", "--train", train, "--test", test, "--out", out)
    assert result.exit_code == 0, result.output
    note = "1 label(s) occur in test but never in train: sport (5 test documents); no model learns them"
    assert note in " ".join(result.stderr.split())
    assert load_split(out).manifest["labels_missing_from_train"] == {"test": {"sport": 5}}
    # baseline computes it from the parts (a split.json without the record is covered), and says it once
    manifest = json.loads((out / "split.json").read_text(encoding="utf-8"))
    del manifest["labels_missing_from_train"]
    (out / "split.json").write_text(json.dumps(manifest), encoding="utf-8")
    result = cli("baseline", out, "--model", "majority", "--json")
    assert result.exit_code == 0, result.output
    stderr = " ".join(result.stderr.split())
    assert note in stderr and stderr.count("never in train") == 1, result.stderr


def test_a_stratified_split_records_nothing_missing(tmp_path):
    train, test = official_parts(tmp_path)
    both = write(tmp_path / "all.jsonl", train.read_text() + test.read_text())
    result = cli("split", both, "--out", tmp_path / "s", "--valid-size", 0)
    assert result.exit_code == 0, result.output
    assert "labels_missing_from_train" not in load_split(tmp_path / "s").manifest
    assert "never in train" not in result.stderr


def test_a_valid_part_with_labels_train_lacks_is_recorded(tmp_path):
    train, test = official_parts(tmp_path)
    valid = write(tmp_path / "valid.jsonl", "".join(
        json.dumps({"id": f"va{i}", "text": f"violin cello {i}", "label": "music"}) + "\n" for i in range(2)))
    result = cli("split", "--train", train, "--test", test, "--valid", valid, "--out", tmp_path / "s")
    assert result.exit_code == 0, result.output
    assert load_split(tmp_path / "s").manifest["labels_missing_from_train"] == {
        "test": {"sport": 5}, "valid": {"music": 2}}
    assert "1 label(s) occur in valid but never in train: music (2 valid documents)" in " ".join(result.stderr.split())
