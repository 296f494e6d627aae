"""`nlpkit predict`: label new documents with a recorded run's model and its tuned decision rule."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional

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
    err,
    warn,
)
from nlpkit.errors import NlpkitError

OUTPUT_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv"}


def predict_cmd(
    run_dir: Annotated[str, typer.Argument(help="Run folder, or a run name under the runs folder (see `nlpkit runs`).")],
    input: Annotated[Path, typer.Argument(help="Documents to label (CSV, TSV, JSONL, JSON, Parquet, fastText); labels not needed.")],
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
    out_file: Annotated[
        Optional[Path], typer.Option("--out", "-o", help="Write predictions here (.jsonl, .json, .csv, .tsv). Default: JSONL on stdout.")
    ] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="How many highest-scoring labels to list with their scores.")] = 5,
    runs_dir: Annotated[Optional[Path], typer.Option("--runs-dir", help="Runs folder for run names. Default: $NLPKIT_RUNS_DIR or ./runs.")] = None,
) -> None:
    """Predict labels for INPUT with the model of RUN_DIR, applying the decision rule tuned in that run."""
    with cli_errors(), user_warnings():
        options = dataset_options_from(locals())
        out_format = _output_format(out_file, input) if out_file is not None else "jsonl"
        records = predict_file(run_dir, input, options, top_k=top_k, runs_root=runs_dir, warn=warn)
        if out_file is None:
            for record in records:
                typer.echo(json.dumps(record, ensure_ascii=False))
        else:
            write_records_atomic(records, out_file, out_format, top_k)
            err().print(f"Wrote {len(records)} predictions to {out_file}", highlight=False)


def predict_file(run_dir, input_path: Path, options, *, top_k: int = 5, runs_root=None,
                 warn=None) -> list[dict[str, Any]]:
    """Records ``{"id", "labels", "scores": {label: p}}`` (plus ``"true_labels"`` when INPUT has labels).

    ``warn`` is called with one-line notes for the user (rows dropped by ``--drop-empty``)."""
    import numpy as np

    from nlpkit.experiment import recorded_rule
    from nlpkit.models import load_model
    from nlpkit.runs import load_run

    run = load_run(run_dir, root=runs_root)
    if not run.model_dir.is_dir():
        raise NlpkitError(f"run {run.name} has no model/ folder ({run.kind} run); predict with a baseline or finetune run.")
    model = load_model(run.model_dir)
    rule = recorded_rule(run, len(model.label_names_))  # lost or damaged: an error naming run.json
    ids, texts, true_labels = read_inputs(input_path, options, warn=warn)
    scores = np.asarray(model.predict_proba(texts), dtype=np.float64)
    decided = np.asarray(rule.predict(scores), dtype=bool)
    names = model.label_names_
    k = min(top_k, len(names))
    records = []
    for i, doc_id in enumerate(ids):
        order = np.argsort(-scores[i], kind="stable")
        record: dict[str, Any] = {
            "id": doc_id,
            "labels": [names[j] for j in order if decided[i, j]],
            "scores": {names[j]: round(float(scores[i, j]), 6) for j in order[:k]},
        }
        if true_labels is not None:
            record["true_labels"] = true_labels[i]
        records.append(record)
    return records


def read_inputs(path: Path, options, *, warn=None) -> tuple[list[str], list[str], list[list[str]] | None]:
    """``(ids, texts, label lists or None)`` from a dataset file whose labels are optional;
    ``warn`` gets the note on rows dropped by ``--drop-empty``."""
    import dataclasses

    from nlpkit.data import dropped_note, read_dataset

    ds = read_dataset(path, dataclasses.replace(options, labels_optional=True))
    note = dropped_note(ds)
    if note and warn is not None:
        warn(note)
    return ds.ids, ds.texts, (ds.label_lists() if ds.n_labels > 0 else None)


def _output_format(out_file: Path, input_path: Path) -> str:
    fmt = OUTPUT_FORMATS.get(out_file.suffix.lower())
    if fmt is None:
        raise NlpkitError(
            f"unknown output type for {out_file}: use a file ending in {', '.join(OUTPUT_FORMATS)}."
        )
    if out_file.exists() and input_path.exists() and out_file.resolve() == input_path.resolve():
        raise NlpkitError(f"--out {out_file} is the input file; choose another output path.")
    if out_file.is_dir():
        raise NlpkitError(f"--out {out_file} is a folder; give a file name such as {out_file / 'predictions.jsonl'}.")
    return fmt


def _rows(records: list[dict], top_k: int) -> Iterator[list[str]]:
    has_true = bool(records) and "true_labels" in records[0]
    header = ["id", "labels"] + (["true_labels"] if has_true else [])
    for r in range(1, top_k + 1):
        header += [f"top{r}", f"top{r}_score"]
    yield header
    for rec in records:
        row = [rec["id"], "|".join(rec["labels"])] + (["|".join(rec["true_labels"])] if has_true else [])
        ranked = list(rec["scores"].items())
        for r in range(top_k):
            row += [ranked[r][0], f"{ranked[r][1]:.6g}"] if r < len(ranked) else ["", ""]
        yield row


def render_records(records: list[dict], fmt: str, top_k: int) -> str:
    """The whole output file as text."""
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    if fmt == "json":
        return json.dumps(records, ensure_ascii=False, indent=2) + "\n"
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter="," if fmt == "csv" else "\t", lineterminator="\n")
    writer.writerows(_rows(records, top_k))
    return buf.getvalue()


def write_records_atomic(records: list[dict], path: Path, fmt: str, top_k: int) -> None:
    """Write into a temporary sibling and rename over ``path``: never a half-written file."""
    text = render_records(records, fmt, top_k)
    from nlpkit._io import atomic_write_text

    atomic_write_text(path, text, newline="", fsync=True)


def register(app: typer.Typer) -> None:
    app.command("predict")(predict_cmd)
