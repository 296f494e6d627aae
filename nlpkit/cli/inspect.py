"""`nlpkit inspect`: read a dataset file or split folder and show what is in it (labels, lengths,
duplicates, near-duplicates within and across parts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from nlpkit.cli._common import (
    DropEmptyOpt,
    EncodingOpt,
    FormatOpt,
    IdColOpt,
    LabelColOpt,
    LabelColsOpt,
    LabelSepOpt,
    NaValuesOpt,
    TaskOpt,
    TextColOpt,
    cli_errors,
    user_warnings,
    dataset_options_from,
    out,
)


def inspect_cmd(
    file: Annotated[
        Path, typer.Argument(help="Dataset file (CSV, TSV, JSONL, JSON, Parquet, fastText), or a split folder.")
    ],
    *,
    format: FormatOpt = None,
    text_col: TextColOpt = None,
    label_col: LabelColOpt = None,
    label_cols: LabelColsOpt = None,
    id_col: IdColOpt = None,
    label_sep: LabelSepOpt = None,
    task: TaskOpt = None,
    encoding: EncodingOpt = "utf-8",
    drop_empty: DropEmptyOpt = False,
    na_values: NaValuesOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
    top: Annotated[
        int, typer.Option("--top", min=1, help="Labels to list at the head and tail of the frequency table.")
    ] = 10,
) -> None:
    """Show rows, labels, label frequencies, text lengths, duplicates and near-duplicates of a dataset
    file, or of a split folder (then near-duplicates within each part and across each pair of parts)."""
    with cli_errors(), user_warnings():
        from nlpkit.data import describe, describe_split, load_split, read_dataset

        options = dataset_options_from(locals())
        if file.is_dir() and (file / "split.json").is_file():  # a split folder's parts are nlpkit's own JSONL
            stats = describe_split(load_split(file), top=top)
        else:
            stats = describe(read_dataset(file, options), top=top)
    if as_json:
        typer.echo(json.dumps(stats, ensure_ascii=False, indent=2))
    else:
        render(stats, top)


def _fmt(x) -> str:
    if isinstance(x, float):
        return f"{x:,.1f}" if not x.is_integer() else f"{int(x):,}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def render(stats: dict, top: int) -> None:
    """Rich tables for people (stdout)."""
    from rich.table import Table
    from rich.text import Text  # plain Text cells: labels and texts may contain "[...]" markup

    console = out()
    what = "Split" if "parts" in stats else "Dataset"
    overview = Table(title=Text(f"{what} {stats['source']}"), show_header=False, title_justify="left")
    overview.add_column("", style="bold")
    overview.add_column("")
    dup = stats["duplicate_texts"]
    rows = [
        ("documents", _fmt(stats["n_docs"])),
        ("dropped rows", _fmt(stats["n_dropped"])),
        ("task", stats["task"]),
        ("labels", _fmt(stats["n_labels"])),
        ("label cardinality (labels/doc)", f"{stats['label_cardinality']:.3f}"),
        ("label density", f"{stats['label_density']:.4f}"),
        ("distinct label sets", _fmt(stats["label_sets"])),
        ("docs without labels", _fmt(stats["docs_without_labels"])),
        ("labels with < 2 docs", _fmt(len(stats["labels_under_2_docs"]))),
        ("labels with < 5 docs", _fmt(len(stats["labels_under_5_docs"]))),
        ("duplicate texts", f"{dup['groups']:,} groups, {dup['extra_copies']:,} extra copies"),
        ("duplicates with conflicting labels", _fmt(dup["conflicting_labels"])),
    ]
    near = stats.get("near_duplicate_texts")
    if near is not None:
        pairs = f"{near['pairs']:,} pair{'s' if near['pairs'] != 1 else ''}"
        rows.append(("near-duplicate texts", f"{near['docs']:,} documents in {pairs} ({_near_rule(near['settings'])})"))
    if "parts" in stats:
        rows.insert(1, ("parts", ", ".join(f"{nm} {n:,}" for nm, n in stats["parts"].items())))
    for key, value in rows:
        overview.add_row(key, value)
    console.print(overview)

    lengths = Table(title="Text length", title_justify="left")
    lengths.add_column("unit")
    for key in ("min", "p5", "p50", "p95", "max", "mean"):
        lengths.add_column(key, justify="right")
    for unit, key in (("words", "text_words"), ("characters", "text_chars")):
        s = stats[key]
        # Lengths are whole words / characters: percentiles shown rounded, the mean with a decimal.
        lengths.add_row(unit, *(f"{round(s[k]):,}" for k in ("min", "p5", "p50", "p95", "max")), f"{s['mean']:,.1f}")
    console.print(lengths)

    def freq_table(title: str, entries: list[dict]) -> Table:
        table = Table(title=title, title_justify="left")
        table.add_column("label")
        table.add_column("docs", justify="right")
        table.add_column("%", justify="right")
        for e in entries:
            table.add_row(Text(e["label"]), _fmt(e["count"]), f"{e['pct']:.2f}")
        return table

    console.print(freq_table(f"Most frequent labels (top {top})", stats["label_frequency_head"]))
    if stats["n_labels"] > top:
        console.print(freq_table(f"Least frequent labels (bottom {top})", stats["label_frequency_tail"]))
    rare = stats["labels_under_2_docs"]
    if rare:
        shown = ", ".join(rare[:20]) + (f", ... ({len(rare)} in all)" if len(rare) > 20 else "")
        console.print(f"Labels with fewer than 2 docs: {shown}", markup=False, highlight=False)
    if dup["examples"]:
        table = Table(title="Duplicate texts (examples)", title_justify="left")
        table.add_column("copies", justify="right")
        table.add_column("ids")
        table.add_column("text")
        for ex in dup["examples"]:
            table.add_row(str(ex["count"]), Text(", ".join(ex["ids"])), Text(" ".join(ex["text"].split())))
        console.print(table)
    if near is not None and near["examples"]:
        table = Table(title="Near-duplicate texts (examples, least similar first)", title_justify="left")
        table.add_column("Jaccard", justify="right")
        table.add_column("ids")
        table.add_column("texts")
        for ex in near["examples"]:
            texts = [" ".join(t.split()) for t in ex["texts"]]
            shown = "\n".join(t if len(t) <= 80 else t[:77] + "..." for t in texts)
            table.add_row(f"{ex['jaccard']:.3f}", Text("\n".join(ex["ids"])), Text(shown))
        console.print(table)
    if "near_duplicates" in stats:
        render_near_duplicates(stats["near_duplicates"])


def _near_rule(settings: dict) -> str:
    return f"Jaccard >= {settings['threshold']:g} of {settings['shingle_words']}-word shingles"


def render_near_duplicates(record: dict) -> None:
    """The near-duplicate counts of a split: within each part, across each pair of parts."""
    from rich.table import Table
    from rich.text import Text

    console = out()
    how = "" if record.get("recorded", True) else "; not recorded in split.json, computed now"
    table = Table(title=Text(f"Near-duplicate texts ({_near_rule(record['settings'])}{how})"), title_justify="left")
    table.add_column("parts")
    table.add_column("pairs", justify="right")
    table.add_column("documents with a near-duplicate")
    order = list(dict.fromkeys(nm for entry in record["across"] for nm in entry["parts"]))  # the split's order
    for name in sorted(record["within"], key=lambda nm: order.index(nm) if nm in order else len(order)):
        entry = record["within"][name]
        table.add_row(Text(f"within {name}"), _fmt(entry["pairs"]), f"{entry['docs']:,}")
    for entry in record["across"]:
        a, b = entry["parts"]
        docs = entry["docs"]
        table.add_row(Text(f"{a} - {b}"), _fmt(entry["pairs"]),
                      Text(f"{a} {docs[a]:,} (in {b}), {b} {docs[b]:,} (in {a})"))
    console.print(table)
    test = record.get("test_with_near_duplicates")
    if test and test["total"]:
        where = ", ".join(f"{n:,} in {name}" for name, n in test["in"].items() if n)
        console.print(f"{test['total']:,} test documents have near-duplicates in other parts ({where}); "
                      "`nlpkit report` also scores runs without them.", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    app.command("inspect")(inspect_cmd)
