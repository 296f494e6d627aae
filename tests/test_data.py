"""The dataset layer: every format and label layout round-trips; split folders are exact and atomic."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from nlpkit.data import (
    Dataset,
    DatasetOptions,
    describe,
    file_sha256,
    load_split,
    read_dataset,
    write_dataset,
    write_split,
)
from nlpkit.errors import ConfigError, DataError

# Texts with the characters that break naive writers: separators, quotes, newlines, non-ASCII.
RECORDS = [
    {"id": "d1", "text": "Plain text about wheat", "labels": ["grain", "wheat"]},
    {"id": "d2", "text": 'Commas, "quotes" and\ttabs', "labels": ["grain"]},
    {"id": "d3", "text": "Two lines\nof text; é ü 漢字 \u2028 sep", "labels": ["crude"]},
    {"id": "d4", "text": "NA", "labels": ["crude", "ship", "grain"]},
    {"id": "d5", "text": "null", "labels": ["ship"]},
]


def write_jsonl(path: Path, records) -> Path:
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(rec, ensure_ascii=False) + "\n" for rec in records)
    return path


def expected(records, key="labels"):
    ids = [r["id"] for r in records]
    texts = [r["text"] for r in records]
    labels = [sorted(r[key]) if isinstance(r[key], list) else [r[key]] for r in records]
    return ids, texts, labels


def assert_content(ds: Dataset, records, key="labels"):
    ids, texts, labels = expected(records, key)
    assert ds.ids == ids
    assert ds.texts == texts
    assert ds.label_lists() == labels
    assert ds.label_names == sorted({lab for labs in labels for lab in labs})
    assert ds.y.dtype == np.uint8
    assert ds.y.shape == (len(records), len(ds.label_names))
    assert set(np.unique(ds.y.toarray()).tolist()) <= {0, 1}


# --- formats and label layouts ------------------------------------------------------------------


def test_jsonl_list_labels(tmp_path):
    ds = read_dataset(write_jsonl(tmp_path / "d.jsonl", RECORDS))
    assert_content(ds, RECORDS)
    assert ds.task == "multi"
    assert ds.extra is None
    assert ds.source == str(tmp_path / "d.jsonl")


def test_json_array(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps(RECORDS, ensure_ascii=False), encoding="utf-8")
    assert_content(read_dataset(path), RECORDS)


def test_csv_delimited_labels_keeps_na_text(tmp_path):
    import pandas as pd

    df = pd.DataFrame(
        {
            "id": [r["id"] for r in RECORDS],
            "text": [r["text"] for r in RECORDS],
            "tags": ["|".join(r["labels"]) for r in RECORDS],
        }
    )
    path = tmp_path / "d.csv"
    df.to_csv(path, index=False)
    ds = read_dataset(path, DatasetOptions(label_col="tags", label_sep="|"))
    assert_content(ds, RECORDS)
    assert ds.texts[3] == "NA"  # not turned into a missing value


def test_tsv_single_label(tmp_path):
    import pandas as pd

    records = [{"id": r["id"], "text": r["text"], "label": r["labels"][0]} for r in RECORDS]
    path = tmp_path / "d.tsv"
    pd.DataFrame(records).to_csv(path, sep="\t", index=False)
    ds = read_dataset(path)
    assert_content(ds, records, key="label")
    assert ds.task == "single"


@pytest.mark.parametrize("layout", ["list", "single"])
def test_parquet(tmp_path, layout):
    import pyarrow as pa
    import pyarrow.parquet as pq

    labels = [r["labels"] for r in RECORDS] if layout == "list" else [r["labels"][0] for r in RECORDS]
    table = pa.table(
        {
            "id": [r["id"] for r in RECORDS],
            "text": [r["text"] for r in RECORDS],
            "labels": labels,
            "year": np.arange(2000, 2000 + len(RECORDS)),
        }
    )
    path = tmp_path / "d.parquet"
    pq.write_table(table, path)
    ds = read_dataset(path)
    records = [dict(r, labels=lab) for r, lab in zip(RECORDS, labels)]
    assert_content(ds, records)
    assert ds.task == ("multi" if layout == "list" else "single")
    assert ds.extra["year"].tolist() == list(range(2000, 2000 + len(RECORDS)))
    # Extra numpy/arrow values are written as plain JSON numbers.
    write_dataset(ds, tmp_path / "out.jsonl")
    first = json.loads((tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()[0])
    assert first["year"] == 2000


def test_indicator_columns(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("id,text,toxic,spam,other\n1,aa,1,0,x\n2,bb,0,0,y\n3,cc,1,1,z\n", encoding="utf-8")
    ds = read_dataset(path, DatasetOptions(label_cols=("toxic", "spam")))
    assert ds.label_names == ["spam", "toxic"]
    assert ds.label_lists() == [["toxic"], [], ["spam", "toxic"]]
    assert ds.task == "multi"
    assert ds.extra.columns.tolist() == ["other"]


def test_fasttext(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("__label__b __label__a  How do I bake?\n\n__label__c Tea time\n", encoding="utf-8")
    ds = read_dataset(path)
    assert ds.texts == ["How do I bake?", "Tea time"]
    assert ds.label_lists() == [["a", "b"], ["c"]]
    assert ds.ids == ["0", "1"]
    assert ds.task == "multi"


def test_fasttext_custom_prefix(tmp_path):
    path = tmp_path / "d.ft"
    path.write_text("#x #y words here\n#z more words\n", encoding="utf-8")
    ds = read_dataset(path, DatasetOptions(label_prefix="#"))
    assert ds.label_lists() == [["x", "y"], ["z"]]


def test_format_override(tmp_path):
    path = write_jsonl(tmp_path / "data.log", RECORDS)
    assert_content(read_dataset(path, DatasetOptions(format="jsonl")), RECORDS)
    with pytest.raises(DataError, match="pass --format"):
        read_dataset(path)


def test_several_text_columns_joined(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("title,body,label\nHello,World,a\nOnly title,,b\n", encoding="utf-8")
    ds = read_dataset(path, DatasetOptions(text_cols=("title", "body")))
    assert ds.texts == ["Hello\nWorld", "Only title\n"]
    assert ds.ids == ["0", "1"]


def test_single_element_lists_infer_single_and_task_can_be_forced(tmp_path):
    records = [{"id": str(i), "text": f"t{i}", "labels": [lab]} for i, lab in enumerate("abca")]
    path = write_jsonl(tmp_path / "d.jsonl", records)
    assert read_dataset(path).task == "single"
    assert read_dataset(path, DatasetOptions(task="multi")).task == "multi"


def test_forcing_single_on_multi_rows_names_the_row(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", RECORDS)
    with pytest.raises(DataError, match=r"line 1 of .*has 2 labels \('grain', 'wheat'\).*single"):
        read_dataset(path, DatasetOptions(task="single"))


# --- ids -----------------------------------------------------------------------------------------


def test_ids_default_to_row_numbers_and_numbers_become_strings(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps([{"text": "a", "label": "x"}, {"text": "b", "label": "y"}]), encoding="utf-8")
    assert read_dataset(path).ids == ["0", "1"]
    path.write_text(json.dumps([{"doc": 7, "text": "a", "label": 1}, {"doc": 9, "text": "b", "label": 2}]))
    ds = read_dataset(path, DatasetOptions(id_col="doc"))
    assert ds.ids == ["7", "9"]
    assert ds.label_names == ["1", "2"]


def test_drop_empty_records_count_and_keeps_row_numbers(tmp_path):
    path = tmp_path / "d.jsonl"
    write_jsonl(
        path,
        [
            {"text": "a", "label": "x"},
            {"text": "  ", "label": "x"},
            {"text": "c", "label": None},
            {"text": "d", "label": "y"},
        ],
    )
    ds = read_dataset(path, DatasetOptions(drop_empty=True))
    assert ds.ids == ["0", "3"]
    assert ds.texts == ["a", "d"]
    assert ds.n_dropped == 2


# --- validation ----------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_dataset(tmp_path / "nope.jsonl")


@pytest.mark.parametrize(
    "options, fragment",
    [
        (DatasetOptions(format="xml"), "unknown format 'xml'"),
        (DatasetOptions(task="both"), "unknown task 'both'"),
        (DatasetOptions(label_col="a", label_cols=("b",)), "cannot be combined"),
        (DatasetOptions(encoding="klingon"), "unknown encoding 'klingon'"),
    ],
)
def test_contradictory_options(tmp_path, options, fragment):
    path = write_jsonl(tmp_path / "d.jsonl", RECORDS)
    with pytest.raises(ConfigError, match=fragment):
        read_dataset(path, options)


def test_delimited_detection_is_skipped_when_task_is_single(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,label\na,x|y\nb,x|z\nc,y\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"looks delimited: line 2 has 'x\|y'.*--label-sep '\|'"):
        read_dataset(path)
    assert read_dataset(path, DatasetOptions(task="single")).label_names == ["x|y", "x|z", "y"]


def test_indicator_column_with_other_values(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("text,a,b\nx,1,0\ny,2,0\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"label column 'a' at line 3 .* holds '2', not 0/1"):
        read_dataset(path, DatasetOptions(label_cols=("a", "b")))


def test_csv_line_numbers_count_multiline_fields(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('id,text,label\n1,"two\nlines",a\n2,"three\nmore\nlines",b\n3,,c\n', encoding="utf-8")
    with pytest.raises(DataError, match="empty text at line 7 of"):
        read_dataset(path)


def test_parquet_and_json_say_row(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps([{"text": "a", "label": "x"}, {"text": "", "label": "x"}]), encoding="utf-8")
    with pytest.raises(DataError, match="empty text at row 2 of"):
        read_dataset(path)


def test_utf8_bom_is_not_part_of_the_header(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes("\ufeffid,text,label\n1,a,x\n".encode("utf-8"))
    assert read_dataset(path).ids == ["1"]


# --- Dataset methods -----------------------------------------------------------------------------


def test_label_order_is_sorted_whatever_the_row_order(tmp_path):
    a = read_dataset(write_jsonl(tmp_path / "a.jsonl", RECORDS))
    b = read_dataset(write_jsonl(tmp_path / "b.jsonl", RECORDS[::-1]))
    assert a.label_names == b.label_names == sorted(a.label_names)
    assert a.label_lists() == b.label_lists()[::-1]
    # The fingerprint is order-sensitive...
    assert a.fingerprint() != b.fingerprint()
    assert a.fingerprint() == b.subset(np.arange(len(b))[::-1]).fingerprint()


def test_fingerprint_tracks_content_not_label_space(tmp_path):
    ds = read_dataset(write_jsonl(tmp_path / "a.jsonl", RECORDS))
    wider = ds.with_label_names(sorted(ds.label_names + ["zzz", "aaa"]))
    assert wider.label_lists() == ds.label_lists()
    assert wider.fingerprint() == ds.fingerprint()
    changed = [dict(r) for r in RECORDS]
    changed[2]["text"] += "!"
    assert read_dataset(write_jsonl(tmp_path / "b.jsonl", changed)).fingerprint() != ds.fingerprint()


def test_with_label_names_refuses_to_lose_a_label(tmp_path):
    ds = read_dataset(write_jsonl(tmp_path / "a.jsonl", RECORDS))
    with pytest.raises(DataError, match="label 'wheat'.*not in the new label space"):
        ds.with_label_names(["crude", "grain", "ship"])


def test_subset_by_index_and_mask(tmp_path):
    records = [dict(r, source=f"s{i}") for i, r in enumerate(RECORDS)]
    ds = read_dataset(write_jsonl(tmp_path / "a.jsonl", records))
    sub = ds.subset([3, 0])
    assert sub.ids == ["d4", "d1"]
    assert sub.label_names == ds.label_names
    assert sub.extra["source"].tolist() == ["s3", "s0"]
    mask = np.array([i % 2 == 0 for i in range(len(ds))])
    assert ds.subset(mask).ids == ["d1", "d3", "d5"]


# --- writing -------------------------------------------------------------------------------------


def test_write_read_round_trip_is_exact_with_extra_columns(tmp_path):
    records = [dict(r, n=i, score=0.5 * i, meta={"k": [i, None]}, note=None) for i, r in enumerate(RECORDS)]
    for r in records:
        r["labels"] = sorted(r["labels"])
    src = write_jsonl(tmp_path / "src.jsonl", records)
    ds = read_dataset(src)
    write_dataset(ds, tmp_path / "a.jsonl")
    assert (tmp_path / "a.jsonl").read_bytes() == src.read_bytes()
    again = read_dataset(tmp_path / "a.jsonl")
    write_dataset(again, tmp_path / "b.jsonl")
    assert file_sha256(tmp_path / "a.jsonl") == file_sha256(tmp_path / "b.jsonl")
    assert again.fingerprint() == ds.fingerprint()


def test_canonical_keys_in_extra_are_renamed_not_lost(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("body,text,label\nreal text,old text,a\n", encoding="utf-8")
    ds = read_dataset(path, DatasetOptions(text_cols=("body",)))
    write_dataset(ds, tmp_path / "out.jsonl")
    rec = json.loads((tmp_path / "out.jsonl").read_text(encoding="utf-8"))
    assert rec == {"id": "0", "text": "real text", "labels": ["a"], "text_original": "old text"}


@pytest.mark.parametrize("name", ["reuters_sample.jsonl", "agnews_sample.jsonl", "cooking_sample.txt"])
def test_bundled_files_round_trip(tmp_path, data_dir, name):
    ds = read_dataset(data_dir / name)
    write_dataset(ds, tmp_path / "out.jsonl")
    back = read_dataset(tmp_path / "out.jsonl", DatasetOptions(task=ds.task))
    assert back.fingerprint() == ds.fingerprint()
    assert back.label_names == ds.label_names
    assert (back.y != ds.y).nnz == 0


def test_reuters_canonical_file_is_reproduced_byte_for_byte(tmp_path, data_dir):
    # The bundled Reuters file is already canonical (id, text, sorted labels, extra "modapte").
    src = data_dir / "reuters_sample.jsonl"
    write_dataset(read_dataset(src), tmp_path / "out.jsonl")
    assert file_sha256(tmp_path / "out.jsonl") == file_sha256(src)


# --- split folders -------------------------------------------------------------------------------


@pytest.fixture
def reuters(data_dir):
    return read_dataset(data_dir / "reuters_sample.jsonl")


def parts_of(ds: Dataset) -> dict[str, Dataset]:
    n = len(ds)
    idx = np.arange(n)
    return {
        "train": ds.subset(idx[: n // 2]),
        "valid": ds.subset(idx[n // 2 : 3 * n // 4]),
        "test": ds.subset(idx[3 * n // 4 :]),
    }


def test_split_round_trip(tmp_path, reuters):
    parts = parts_of(reuters)
    written = write_split(tmp_path / "split", parts, {"seed": 7, "method": "manual"})
    loaded = load_split(tmp_path / "split")
    assert loaded.manifest["seed"] == 7
    assert (
        loaded.label_names
        == written.label_names
        == sorted(set().union(*(p.label_names for p in parts.values())))
    )
    assert loaded.task == "multi"
    for name, ds in parts.items():
        assert loaded.parts[name].fingerprint() == ds.fingerprint()
        assert loaded.parts[name].label_names == loaded.label_names
        assert loaded.manifest["parts"][name]["n_docs"] == len(ds)
        assert loaded.manifest["parts"][name]["sha256"] == file_sha256(tmp_path / "split" / f"{name}.jsonl")
    assert loaded.train.ids == parts["train"].ids
    assert loaded.test_fingerprint == parts["test"].fingerprint()
    assert loaded.fingerprint == written.fingerprint == loaded.manifest["split_sha256"]
    assert loaded.test.extra["modapte"].tolist() == parts["test"].extra["modapte"].tolist()


def test_split_is_byte_deterministic(tmp_path, reuters):
    write_split(tmp_path / "a", parts_of(reuters), {"seed": 1})
    write_split(tmp_path / "b", parts_of(reuters), {"seed": 1})
    files = sorted(os.listdir(tmp_path / "a"))
    assert files == ["split.json", "test.jsonl", "train.jsonl", "valid.jsonl"]
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes()


def test_split_hash_changes_when_parts_swap(tmp_path, reuters):
    parts = parts_of(reuters)
    a = write_split(tmp_path / "a", parts, {})
    b = write_split(
        tmp_path / "b", {"train": parts["test"], "valid": parts["valid"], "test": parts["train"]}, {}
    )
    assert a.fingerprint != b.fingerprint


def test_split_unions_label_spaces(tmp_path):
    train = read_dataset(write_jsonl(tmp_path / "tr.jsonl", RECORDS[:2]))
    test = read_dataset(write_jsonl(tmp_path / "te.jsonl", RECORDS[2:]))
    assert train.label_names != test.label_names
    split = load_split(write_split(tmp_path / "s", {"train": train, "test": test}, {}).path)
    union = sorted(set(train.label_names) | set(test.label_names))
    assert split.label_names == union
    assert split.train.label_lists() == train.label_lists()
    assert split.train.y.shape == (2, len(union))
    assert train.label_names == ["grain", "wheat"]  # the caller's dataset is not modified


def test_split_refuses_existing_folder_and_overwrites_only_splits(tmp_path, reuters):
    out = tmp_path / "split"
    write_split(out, parts_of(reuters), {"seed": 1})
    with pytest.raises(
        DataError, match=f"output folder exists: {out}; choose another --out or pass --overwrite"
    ):
        write_split(out, parts_of(reuters), {"seed": 2})
    assert load_split(out).manifest["seed"] == 1
    write_split(out, parts_of(reuters), {"seed": 2}, overwrite=True)
    assert load_split(out).manifest["seed"] == 2
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("do not delete")
    with pytest.raises(DataError, match="not a split folder"):
        write_split(precious, parts_of(reuters), {}, overwrite=True)
    assert (precious / "thesis.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious", "split"]


def test_split_failure_leaves_nothing(tmp_path, reuters, monkeypatch):
    from nlpkit.data import splits

    real = splits.write_dataset
    calls = []

    def flaky(ds, path):
        calls.append(path)
        if len(calls) == 2:
            raise OSError("disk full")
        real(ds, path)

    monkeypatch.setattr(splits, "write_dataset", flaky)
    with pytest.raises(OSError, match="disk full"):
        write_split(tmp_path / "split", parts_of(reuters), {})
    assert list(tmp_path.iterdir()) == []


def test_split_failed_overwrite_keeps_the_old_split(tmp_path, reuters, monkeypatch):
    from nlpkit.data import splits

    out = tmp_path / "split"
    write_split(out, parts_of(reuters), {"seed": 1})
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(splits, "write_dataset", lambda ds, path: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError):
        write_split(out, parts_of(reuters), {"seed": 2}, overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["split"]


def test_kfold_split_needs_no_train(tmp_path, reuters):
    idx = np.arange(len(reuters))
    parts = {f"fold{k}": reuters.subset(idx[k::3]) for k in range(3)}
    split = load_split(write_split(tmp_path / "s", parts, {"k": 3}).path)
    assert split.train is None
    assert [len(f) for f in split.folds] == [len(idx[k::3]) for k in range(3)]


def test_fold_split_rotates_the_folds_into_train_and_test(tmp_path, reuters):
    from nlpkit.data import fold_split, load_experiment_split

    idx = np.arange(len(reuters))
    parts = {f"fold{k}": reuters.subset(idx[k::3]) for k in range(3)}
    split = load_split(write_split(tmp_path / "s", parts, {"k": 3}).path)
    views = [fold_split(split, k) for k in range(3)]
    for k, view in enumerate(views):
        assert sorted(view.parts) == ["test", "train"] and view.manifest["fold"] == k
        assert view.test.ids == split.folds[k].ids
        assert sorted(view.train.ids) == sorted(i for j, f in enumerate(split.folds) if j != k for i in f.ids)
        assert view.manifest["parts"]["test"]["file"] == f"fold{k}.jsonl"
    assert len({v.fingerprint for v in views} | {split.fingerprint}) == 4  # runs on different folds never mix
    assert fold_split(split, 1).fingerprint == views[1].fingerprint  # ... and the same fold is the same split
    with pytest.raises(ConfigError, match=r"--fold 3 is out of range: .* has folds 0..2"):
        fold_split(split, 3)
    with pytest.raises(ConfigError, match=r"is a k-fold split: choose a fold with --fold N \(0..2\)"):
        load_experiment_split(split.path)
    assert load_experiment_split(split.path, 2).fingerprint == views[2].fingerprint


def test_fold_split_with_a_held_out_test_part_rotates_valid(tmp_path, reuters):
    from nlpkit.data import fold_split

    idx = np.arange(len(reuters))
    parts = {"test": reuters.subset(idx[:100]), **{f"fold{k}": reuters.subset(idx[100:][k::2]) for k in range(2)}}
    split = load_split(write_split(tmp_path / "s", parts, {}).path)
    view = fold_split(split, 1)
    assert view.valid.ids == split.folds[1].ids and view.train.ids == split.folds[0].ids
    assert view.test.ids == split.test.ids and view.test_fingerprint == split.test_fingerprint
    plain = load_split(write_split(tmp_path / "plain", {"train": reuters.subset(idx[100:]),
                                                        "test": reuters.subset(idx[:100])}, {}).path)
    with pytest.raises(ConfigError, match="--fold applies to a k-fold split"):
        fold_split(plain, 0)


def test_load_split_errors(tmp_path, reuters):
    with pytest.raises(DataError, match="split folder not found"):
        load_split(tmp_path / "nope")
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(DataError, match="not a split folder.*not a directory"):
        load_split(tmp_path / "file.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(
        DataError, match=r"not a split folder: .*empty \(no split.json\); make one with `nlpkit split`"
    ):
        load_split(tmp_path / "empty")

    out = tmp_path / "s"
    write_split(out, parts_of(reuters), {})
    (out / "valid.jsonl").unlink()
    with pytest.raises(DataError, match="split part 'valid' listed in .* is missing"):
        load_split(out)

    out = tmp_path / "t"
    write_split(out, parts_of(reuters), {})
    with open(out / "test.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"id": "new", "text": "sneaked in", "labels": ["earn"]}\n')
    with pytest.raises(DataError, match="changed after the split was written"):
        load_split(out)

    out = tmp_path / "u"
    write_split(out, {"test": reuters.subset([0, 1])}, {})
    with pytest.raises(DataError, match="has no train part"):
        load_split(out)


# --- statistics ----------------------------------------------------------------------------------


def test_describe_matches_an_independent_count(data_dir):
    rows = [
        json.loads(line)
        for line in (data_dir / "reuters_sample.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    stats = describe(read_dataset(data_dir / "reuters_sample.jsonl"), top=5)
    counts = Counter(lab for r in rows for lab in r["labels"])
    assert stats["n_docs"] == len(rows)
    assert stats["n_labels"] == len(counts)
    assert stats["label_cardinality"] == pytest.approx(
        sum(map(len, (r["labels"] for r in rows))) / len(rows), abs=1e-4
    )
    assert stats["label_density"] == pytest.approx(stats["label_cardinality"] / len(counts), abs=1e-4)
    head = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    assert [(e["label"], e["count"]) for e in stats["label_frequency_head"]] == head
    assert stats["labels_under_2_docs"] == sorted(k for k, c in counts.items() if c < 2)
    assert stats["labels_under_5_docs"] == sorted(k for k, c in counts.items() if c < 5)
    words = [len(r["text"].split()) for r in rows]
    assert stats["text_words"]["min"] == min(words) and stats["text_words"]["max"] == max(words)
    assert stats["text_words"]["p50"] == pytest.approx(float(np.median(words)))
    json.dumps(stats)  # JSON-serialisable


def test_describe_duplicates_and_unlabelled(tmp_path):
    records = [
        {"id": "a", "text": "same", "labels": ["x"]},
        {"id": "b", "text": "same", "labels": ["y"]},
        {"id": "c", "text": "other", "labels": []},
        {"id": "d", "text": "same", "labels": ["x"]},
    ]
    stats = describe(read_dataset(write_jsonl(tmp_path / "d.jsonl", records)))
    dup = stats["duplicate_texts"]
    assert (dup["groups"], dup["docs"], dup["extra_copies"], dup["conflicting_labels"]) == (1, 3, 2, 1)
    assert dup["examples"][0]["ids"] == ["a", "b", "d"]
    assert stats["docs_without_labels"] == 1
    assert stats["task"] == "multi"


# --- hardening -----------------------------------------------------------------------------------


def test_csv_line_numbers_skip_blank_lines_like_pandas(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("id,text,label\n1,a,x\n   \n\n2,b,y\n3,,z\n", encoding="utf-8")
    with pytest.raises(DataError, match="empty text at line 6 of"):
        read_dataset(path)


def test_fasttext_labels_after_the_text(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("__label__a hello __label__b world\n__label__c  keep  spacing \n", encoding="utf-8")
    ds = read_dataset(path)
    assert ds.texts == ["hello world", "keep  spacing"]
    assert ds.label_lists() == [["a", "b"], ["c"]]


def test_options_given_as_plain_strings_are_normalised(data_dir):
    ds = read_dataset(data_dir / "agnews_sample.jsonl", DatasetOptions(text_cols="text", task="SINGLE"))
    assert ds.task == "single"
    assert len(ds) == len((data_dir / "agnews_sample.jsonl").read_text(encoding="utf-8").splitlines())


def test_write_dataset_creates_parent_folders(tmp_path):
    ds = read_dataset(write_jsonl(tmp_path / "a.jsonl", RECORDS))
    write_dataset(ds, tmp_path / "x" / "y" / "out.jsonl")
    assert read_dataset(tmp_path / "x" / "y" / "out.jsonl").fingerprint() == ds.fingerprint()
    assert [p.name for p in (tmp_path / "x" / "y").iterdir()] == ["out.jsonl"]  # no temp file left


def test_overwrite_may_replace_an_empty_folder(tmp_path, reuters):
    (tmp_path / "out").mkdir()
    with pytest.raises(DataError, match="output folder exists"):
        write_split(tmp_path / "out", parts_of(reuters), {})
    write_split(tmp_path / "out", parts_of(reuters), {}, overwrite=True)
    assert load_split(tmp_path / "out").train is not None


def test_load_split_refuses_part_files_outside_the_folder(tmp_path, reuters):
    out = tmp_path / "s"
    write_split(out, parts_of(reuters), {})
    manifest = json.loads((out / "split.json").read_text(encoding="utf-8"))
    manifest["parts"]["test"]["file"] = "../elsewhere.jsonl"
    (out / "split.json").write_text(json.dumps(manifest), encoding="utf-8")
    with pytest.raises(DataError, match="not a plain file name"):
        load_split(out)


def test_write_split_parts_point_at_their_files(tmp_path, reuters):
    split = write_split(tmp_path / "s", parts_of(reuters), {})
    assert split.test.source == str(tmp_path / "s" / "test.jsonl")
    assert split.test.fingerprint() == load_split(tmp_path / "s").test.fingerprint()


def test_labels_optional_reads_unlabelled_files(tmp_path):
    csv = tmp_path / "d.csv"
    csv.write_text("id,text,source\n1,a,x\n2,b,y\n", encoding="utf-8")
    with pytest.raises(DataError, match="no label column"):
        read_dataset(csv)
    ds = read_dataset(csv, DatasetOptions(labels_optional=True))
    assert (ds.ids, ds.texts, ds.n_labels, ds.label_lists()) == (["1", "2"], ["a", "b"], 0, [[], []])
    assert ds.y.shape == (2, 0)
    assert ds.extra.columns.tolist() == ["source"]
    ft = tmp_path / "d.txt"
    ft.write_text("__label__q first\n", encoding="utf-8")
    assert read_dataset(ft, DatasetOptions(labels_optional=True)).label_lists() == [["q"]]
    ft.write_text("first line\nsecond line\n", encoding="utf-8")
    ds = read_dataset(ft, DatasetOptions(format="fasttext", labels_optional=True))
    assert (ds.texts, ds.n_labels) == (["first line", "second line"], 0)
    # A labelled file still reads its labels, and a named label column must exist.
    assert (
        read_dataset(
            write_jsonl(tmp_path / "l.jsonl", RECORDS), DatasetOptions(labels_optional=True)
        ).n_labels
        == 4
    )
    with pytest.raises(DataError, match="unknown column 'tags'"):
        read_dataset(csv, DatasetOptions(labels_optional=True, label_col="tags"))


def test_labels_optional_with_a_column_of_nulls(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "labels": None}, {"text": "b", "labels": []}])
    with pytest.raises(DataError, match="missing label at line 1"):
        read_dataset(path)
    assert read_dataset(path, DatasetOptions(labels_optional=True)).label_lists() == [[], []]


def test_reading_many_rows(tmp_path):
    # Speed is measured in bench/core_bench.py, not here.
    rng = np.random.default_rng(0)
    n = 50_000
    path = tmp_path / "big.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for i, k in enumerate(rng.integers(1, 4, size=n)):
            labels = [f"l{j}" for j in rng.integers(0, 50, size=k)]
            fh.write(json.dumps({"id": str(i), "text": f"short text number {i}", "labels": labels}) + "\n")
    ds = read_dataset(path)
    assert len(ds) == n and ds.ids[-1] == str(n - 1)
    assert ds.y.shape == (n, len(ds.label_names)) and ds.y.sum() > n


def test_hand_built_dataset_with_int_ids_round_trips(tmp_path):
    import scipy.sparse as sp

    ds = Dataset(
        ids=[10, 11],
        texts=["a", "b"],
        y=sp.csr_matrix(np.array([[1, 0], [0, 1]], dtype=np.uint8)),
        label_names=["p", "q"],
        task="single",
    )
    write_dataset(ds, tmp_path / "d.jsonl")
    back = read_dataset(tmp_path / "d.jsonl")
    assert back.ids == ["10", "11"]
    assert back.fingerprint() == ds.fingerprint()
    dense = Dataset(
        ids=["x"], texts=["a"], y=np.array([[0, 1]], dtype=np.uint8), label_names=["p", "q"], task="single"
    )
    assert dense.with_label_names(["o", "p", "q"]).label_lists() == [["q"]]


# --- values that cannot be read or written back --------------------------------------------------


def test_lone_surrogate_escape_is_refused_with_line_and_column(tmp_path):
    # json.loads turns "\ud800" into a str that cannot be encoded as UTF-8: writing a split crashed.
    path = tmp_path / "d.jsonl"
    path.write_text('{"text": "ok", "labels": ["a"]}\n\n{"text": "hi \\ud800 there", "labels": ["a"]}\n',
                    encoding="utf-8")
    with pytest.raises(DataError, match=r"d\.jsonl:3:14: '\\ud800' is a lone surrogate escape.*remove it"):
        read_dataset(path)
    path = tmp_path / "d.json"
    path.write_text('[{"text": "ok", "label": "a"},\n {"text": "x", "label": "\\uDC00b"}]', encoding="utf-8")
    with pytest.raises(DataError, match=r"d\.json:2:26: '\\uDC00' is a lone surrogate"):
        read_dataset(path)
    # a complete pair is one character, and an escaped backslash followed by "ud800" is plain text
    path = tmp_path / "ok.jsonl"
    path.write_text('{"text": "smile \\ud83d\\ude00 and \\\\ud800", "labels": ["a"]}\n', encoding="utf-8")
    ds = read_dataset(path)
    assert ds.texts == ["smile \U0001f600 and \\ud800"]
    write_dataset(ds, tmp_path / "back.jsonl")


def test_write_dataset_refuses_a_lone_surrogate_built_in_python(tmp_path):
    import scipy.sparse as sp

    ds = Dataset(ids=["a", "b"], texts=["fine", "bad \ud800"], y=sp.csr_matrix(np.ones((2, 1), np.uint8)),
                 label_names=["x"], task="single")
    with pytest.raises(DataError, match=r"document 'b' \(position 1\) holds a lone surrogate"):
        write_dataset(ds, tmp_path / "d.jsonl")
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def nested_jsonl(path: Path, depth: int) -> Path:
    rows = [json.dumps({"text": f"t{i}", "labels": ["a"]}) for i in range(5)]
    rows[3] = '{"text": "deep", "labels": ["a"], "meta": ' + "[" * depth + "]" * depth + "}"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_deeply_nested_json_names_the_line(tmp_path):
    # Too deep for json.loads (RecursionError), then deep enough to parse but not to write back.
    with pytest.raises(DataError, match=r"d\.jsonl:4:(\d+): JSON nested deeper than 100 levels.*line 4"):
        read_dataset(nested_jsonl(tmp_path / "d.jsonl", 100_000))
    with pytest.raises(DataError, match=r"line 4 of .*e\.jsonl \(column 'meta'\) is nested deeper than 100"):
        read_dataset(nested_jsonl(tmp_path / "e.jsonl", 900))
    path = tmp_path / "f.json"
    path.write_text('[{"text": "a", "label": "x",\n "m": ' + "{\"k\": " * 5000 + "1" + "}" * 5000 + "}]")
    with pytest.raises(DataError, match=r"f\.json:2:\d+: JSON nested deeper than 100 levels"):
        read_dataset(path)
    ds = read_dataset(nested_jsonl(tmp_path / "g.jsonl", 100))  # the limit itself reads and writes
    write_dataset(ds, tmp_path / "back.jsonl")


def test_mixed_label_keys_name_the_odd_row(tmp_path):
    rows = [{"id": str(i), "text": f"t{i}", "label": "a" if i % 2 else "b"} for i in range(20)]
    rows[6] = {"id": "6", "text": "t6", "labels": ["b"]}
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    msg = (r"line 7 of .*d\.jsonl has its labels under 'labels' but 19 other row\(s\) use 'label';"
           r" use one label key throughout .* --label-col label$")
    for drop in (False, True):  # --drop-empty would have dropped the 19 rows of the other key
        with pytest.raises(DataError, match=msg):
            read_dataset(path, DatasetOptions(drop_empty=drop))
    assert len(read_dataset(path, DatasetOptions(label_col="label", drop_empty=True))) == 19
    # both keys on every row: a layout, not a mix; 'labels' is read as before
    both = write_jsonl(tmp_path / "both.jsonl", [{"text": "x", "label": "a", "labels": ["p", "q"]}] * 2)
    assert read_dataset(both).label_names == ["p", "q"]


@pytest.mark.parametrize(
    "labels, fragment",
    [
        ('"labels": [null]', "label list at line 2 of .* \\(column 'labels'\\) holds null; remove it"),
        ('"labels": ["a", ""]', "holds an empty string; remove it from the list"),
        ('"labels": ["a", " "]', "holds an empty string"),
        ('"labels": ["a", true]', "holds the boolean true; write labels as strings"),
        ('"label": true', "label at line 2 of .* \\(column 'label'\\) is the boolean true, not a label name"),
        ('"label": false', "is the boolean false"),
    ],
)
def test_null_empty_and_boolean_labels_are_errors(tmp_path, labels, fragment):
    key = "labels" if '"labels"' in labels else "label"
    first = '{"text": "a", "%s": %s}\n' % (key, '["a"]' if key == "labels" else '"a"')
    path = tmp_path / "d.jsonl"
    path.write_text(first + '{"text": "b", ' + labels + "}\n", encoding="utf-8")
    with pytest.raises(DataError, match=fragment) as info:
        read_dataset(path, DatasetOptions(drop_empty=True))  # not an empty row: --drop-empty does not apply
    assert "--drop-empty" not in str(info.value)
    path.write_text(first + '{"text": "b", "labels": []}\n', encoding="utf-8")
    if key == "labels":  # an empty list stays a document without labels
        assert read_dataset(path).label_lists() == [["a"], []]


def test_drop_note_for_split_and_predict(tmp_path):
    from nlpkit.cli.predict import read_inputs
    from nlpkit.data import dropped_note

    path = write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "label": "x"}, {"text": "", "label": "x"},
                                              {"text": "c", "label": "y"}])
    ds = read_dataset(path, DatasetOptions(drop_empty=True))
    assert dropped_note(ds) == f"--drop-empty dropped 1 of 3 rows of {path} (empty text or no label)"
    assert dropped_note(read_dataset(write_jsonl(tmp_path / "e.jsonl", RECORDS))) is None
    notes = []
    ids, _, _ = read_inputs(path, DatasetOptions(drop_empty=True), warn=notes.append)
    assert ids == ["0", "2"] and notes == [dropped_note(ds)]


def test_row_number_ids_are_marked_and_kept_by_subsets(tmp_path):
    ds = read_dataset(write_jsonl(tmp_path / "a.jsonl", [{"text": "a", "label": "x"}, {"text": "b", "label": "y"}]))
    assert ds.row_number_ids and ds.subset([1]).row_number_ids
    assert ds.with_label_names(["w", "x", "y"]).row_number_ids
    assert not read_dataset(write_jsonl(tmp_path / "b.jsonl", RECORDS)).row_number_ids
