"""`nlpkit inspect`: bundled files, --json, and one actionable error line for every bad input."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from typer.testing import CliRunner

from nlpkit.cli import app

runner = CliRunner()


def inspect(*args):
    return runner.invoke(app, ["inspect", *map(str, args)])


def write(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def assert_error(result, *fragments):
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr.startswith("Error: ")
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # one line, no traceback
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


# --- bundled files -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, task",
    [("reuters_sample.jsonl", "multi"), ("agnews_sample.jsonl", "single"), ("cooking_sample.txt", "multi")],
)
def test_inspect_bundled_json(data_dir, name, task):
    result = inspect(data_dir / name, "--json", "--top", 3)
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    n_lines = sum(1 for line in (data_dir / name).read_text(encoding="utf-8").splitlines() if line.strip())
    assert stats["n_docs"] == n_lines
    assert stats["task"] == task
    assert len(stats["label_frequency_head"]) == min(3, stats["n_labels"])
    assert stats["n_dropped"] == 0


def test_inspect_agnews_counts_match_the_file(data_dir):
    rows = [
        json.loads(line)
        for line in (data_dir / "agnews_sample.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    stats = json.loads(inspect(data_dir / "agnews_sample.jsonl", "--json").stdout)
    counts = Counter(r["label"] for r in rows)
    assert {e["label"]: e["count"] for e in stats["label_frequency_head"]} == dict(counts)
    assert stats["label_cardinality"] == 1.0


@pytest.mark.parametrize("name", ["reuters_sample.jsonl", "agnews_sample.jsonl", "cooking_sample.txt"])
def test_inspect_bundled_tables(data_dir, name):
    result = inspect(data_dir / name, "--top", 4)
    assert result.exit_code == 0, result.output
    for heading in ("documents", "label cardinality", "Text length", "Most frequent labels (top 4)"):
        assert heading in result.stdout


def test_inspect_shows_duplicates_and_dropped_rows(tmp_path):
    path = write(
        tmp_path,
        "d.jsonl",
        '{"text": "same", "label": "a"}\n{"text": "same", "label": "b"}\n{"text": "", "label": "a"}\n',
    )
    stats = json.loads(inspect(path, "--json", "--drop-empty").stdout)
    assert stats["n_dropped"] == 1
    assert stats["duplicate_texts"]["conflicting_labels"] == 1
    table = inspect(path, "--drop-empty").stdout
    assert "Duplicate texts" in table


def test_inspect_counts_words_of_scripts_written_without_spaces(tmp_path):
    # Chinese and Japanese put no spaces between words: each character counts, as the baselines
    # tokenise it, not the whole sentence as one word; other text is counted between spaces
    rows = [("我们今天很好。", 6), ("iPhone 12 手机很好用!", 7), ("東京は 晴れ です", 7), ("naïve café, ok", 3),
            ("नमस्ते दुनिया", 2), ("plain text - here", 4)]
    path = write(tmp_path, "d.jsonl", "".join(json.dumps({"text": t, "label": "a"}, ensure_ascii=False) + "\n"
                                              for t, _n in rows))
    words = json.loads(inspect(path, "--json").stdout)["text_words"]
    assert words["min"] == 2 and words["max"] == 7
    assert words["mean"] == pytest.approx(sum(n for _t, n in rows) / len(rows), abs=0.05)


def test_inspect_dataset_options(tmp_path):
    path = write(tmp_path, "d.csv", "doc,title,body,tags\nx1,A,aa,p;q\nx2,B,bb,q\n")
    result = inspect(
        path,
        "--json",
        "--id-col",
        "doc",
        "--text-col",
        "title",
        "--text-col",
        "body",
        "--label-col",
        "tags",
        "--label-sep",
        ";",
    )
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert (stats["n_docs"], stats["n_labels"], stats["task"]) == (2, 2, "multi")
    path = write(tmp_path, "m.csv", "text,a,b\nx,1,0\ny,1,1\n")
    stats = json.loads(inspect(path, "--json", "--label-cols", "a,b").stdout)
    assert stats["label_cardinality"] == 1.5


# --- every bad input: one line, exit code 1 ------------------------------------------------------


def test_missing_file(tmp_path):
    assert_error(inspect(tmp_path / "nope.csv"), "file not found:", "nope.csv")


def test_unknown_column_suggests_the_closest(tmp_path):
    path = write(tmp_path, "data.csv", "id,text,labels\n1,a,b\n")
    assert_error(
        inspect(path, "--text-col", "txt"),
        "unknown column 'txt' in",
        "data.csv; available: id, text, labels; did you mean 'text'?",
    )


def test_no_label_column(tmp_path):
    path = write(tmp_path, "d.csv", "id,text,category\n1,a,b\n")
    assert_error(inspect(path), "no label column in", "available: id, text, category", "--label-col")


def test_empty_text(tmp_path):
    path = write(tmp_path, "d.jsonl", '{"text": "a", "label": "x"}\n\n{"text": " ", "label": "x"}\n')
    assert_error(inspect(path), "empty text at line 3 of", "--drop-empty")


def test_non_string_text(tmp_path):
    path = write(tmp_path, "d.jsonl", '{"text": "a", "label": "x"}\n{"text": 42, "label": "x"}\n')
    assert_error(inspect(path), "text at line 2 of", "is not a string (got int)", "--drop-empty")


def test_missing_label(tmp_path):
    path = write(tmp_path, "d.csv", "text,label\na,x\nb,\n")
    assert_error(inspect(path), "missing label at line 3 of", "(column 'label')", "--drop-empty")


def test_undecodable_bytes(tmp_path):
    path = write(tmp_path, "d.csv", b"text,label\nok,x\ncaf\xe9,y\n")
    assert_error(inspect(path), "cannot decode", "byte offset 19 (line 3)", "--encoding latin-1")
    result = inspect(path, "--encoding", "latin-1", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["n_docs"] == 2


def test_malformed_jsonl_line(tmp_path):
    bad = '{"text": "b", "label": x}'
    path = write(tmp_path, "d.jsonl", '{"text": "a", "label": "x"}\n' + bad + "\n")
    col = bad.index(" x") + 2  # 1-based column of the unquoted x
    assert_error(inspect(path), f"d.jsonl:2:{col}: malformed JSON", "fix or remove line 2")


def test_jsonl_line_that_is_not_an_object(tmp_path):
    path = write(tmp_path, "d.jsonl", '{"text": "a", "label": "x"}\n["b", "y"]\n')
    assert_error(inspect(path), "d.jsonl:2: expected a JSON object per line, got list")


def test_malformed_json_array(tmp_path):
    bad = '{"text": "b" "label": "y"}'
    path = write(tmp_path, "d.json", '[\n{"text": "a", "label": "x"},\n' + bad + "\n]")
    col = bad.index(' "label"') + 2  # where the missing comma should be
    assert_error(inspect(path), f"d.json:3:{col}: malformed JSON")


def test_duplicate_ids_name_both_lines(tmp_path):
    path = write(tmp_path, "d.csv", "id,text,label\n1,a,x\n2,b,y\n1,c,z\n")
    assert_error(inspect(path), "duplicate id '1' at line 2 and line 4 of", "--id-col")


def test_delimited_label_column(tmp_path):
    rows = "".join(f"t{i},a|b\n" for i in range(5)) + "u,a\n"
    path = write(tmp_path, "d.csv", "text,labels\n" + rows)
    assert_error(
        inspect(path),
        "label column 'labels' in",
        "looks delimited: line 2 has 'a|b' (and 4 more rows)",
        "--label-sep '|'",
    )
    assert json.loads(inspect(path, "--label-sep", "|", "--json").stdout)[
        "label_cardinality"
    ] == pytest.approx(11 / 6, abs=1e-4)


def test_forcing_single_on_a_multi_label_row(tmp_path):
    path = write(tmp_path, "d.jsonl", '{"text": "a", "labels": ["x"]}\n{"text": "b", "labels": ["x", "y"]}\n')
    assert_error(
        inspect(path, "--task", "single"), "line 2 of", "has 2 labels ('x', 'y')", "drop --task single"
    )


def test_empty_file(tmp_path):
    assert_error(inspect(write(tmp_path, "d.jsonl", "\n\n")), "d.jsonl is empty")
    assert_error(inspect(write(tmp_path, "h.csv", "text,label\n")), "h.csv has no rows")


def test_everything_dropped(tmp_path):
    path = write(tmp_path, "d.csv", "text,label\n,x\n  ,y\n")
    assert_error(inspect(path, "--drop-empty"), "every row of", "was dropped")


def test_unknown_extension_and_not_fasttext(tmp_path):
    assert_error(inspect(write(tmp_path, "d.xml", "<a/>")), "cannot tell the format", "--format")
    assert_error(
        inspect(write(tmp_path, "notes.txt", "just some notes\n")), "does not look like fastText", "--format"
    )


def test_fasttext_line_without_label(tmp_path):
    path = write(tmp_path, "d.txt", "__label__a first\nno label here\n")
    assert_error(inspect(path), "missing label at line 2 of")


def test_not_parquet(tmp_path):
    assert_error(inspect(write(tmp_path, "d.parquet", "not parquet at all")), "cannot read", "as Parquet")


def test_bad_options(tmp_path):
    path = write(tmp_path, "d.csv", "text,label\na,x\n")
    assert_error(inspect(path, "--task", "both"), "unknown task 'both'; use 'single' or 'multi'")
    assert_error(inspect(path, "--format", "xml"), "unknown format 'xml'")
    assert_error(inspect(path, "--label-col", "label", "--label-cols", "a,b"), "cannot be combined")
    assert_error(inspect(path, "--encoding", "nope"), "unknown encoding 'nope'")
    assert_error(inspect(path, "--label-cols", "a,b"), "unknown column 'a' in", "--label-cols")


def test_folder_instead_of_file(tmp_path):
    assert_error(inspect(tmp_path), "is a folder, not a dataset file")


def test_tables_show_labels_and_texts_literally(tmp_path):
    # Rich would otherwise read "[red]" as markup and swallow it.
    path = write(
        tmp_path,
        "d.jsonl",
        '{"text": "see [bold]x[/bold]", "labels": ["[red]a"]}\n'
        '{"text": "see [bold]x[/bold]", "labels": ["b"]}\n',
    )
    result = inspect(path)
    assert result.exit_code == 0, result.output
    assert "[red]a" in result.stdout
    assert "see [bold]x[/bold]" in result.stdout


def test_wrong_separator_is_named(tmp_path):
    assert_error(inspect(write(tmp_path, "d.csv", "id\ttext\tlabel\n1\ta\tx\n")), "pass --format tsv")
    assert_error(inspect(write(tmp_path, "e.csv", "id;text;label\n1;a;x\n")), "looks ';'-separated")


def test_line_numbers_after_a_huge_field(tmp_path):
    big = "word " * 40_000  # 200 kB in one field: more than Python's csv default field limit
    path = write(tmp_path, "d.csv", f'text,label\n"{big}",x\n"",y\n')
    assert_error(inspect(path), "empty text at line 3 of")


def test_json_lines_in_a_json_file(tmp_path):
    path = write(tmp_path, "d.json", '{"text": "a", "label": "x"}\n{"text": "b", "label": "y"}\n')
    assert_error(inspect(path), "d.json:2:1: malformed JSON (Extra data)", "pass --format jsonl")
    assert inspect(path, "--format", "jsonl").exit_code == 0


def test_mixed_label_keys_and_odd_label_values(tmp_path):
    rows = [{"text": f"t{i}", "label": "a"} for i in range(20)]
    rows[6] = {"text": "t6", "labels": ["a"]}
    path = write(tmp_path, "d.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    assert_error(inspect(path, "--drop-empty"), "line 7 of", "under 'labels' but 19 other row(s) use 'label'",
                 "--label-col label")
    assert_error(inspect(write(tmp_path, "n.jsonl", '{"text": "a", "labels": ["x", null]}\n')),
                 "label list at line 1 of", "holds null")
    assert_error(inspect(write(tmp_path, "b.jsonl", '{"text": "a", "label": true}\n')),
                 "label at line 1 of", "is the boolean true")
