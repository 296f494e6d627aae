"""`nlpkit split`: a stratified train/valid/test (or k-fold) split folder from one dataset file,
or from parts the user already has (--train/--test [--valid])."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

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
    warn,
)
from nlpkit.errors import ConfigError

# Measures shown in the table, in order (definitions: nlpkit.split.split_quality).
_MEASURES = ("LD", "LPD", "rLD", "DCP", "ED", "FZ", "FLZ", "FLZ_avoidable", "FZLC", "FLPZ", "size_error_max")


def split_cmd(
    input: Annotated[
        Optional[Path], typer.Argument(help="Dataset file to split (omit with --train/--test).", show_default=False)
    ] = None,
    *,
    out_dir: Annotated[Optional[Path], typer.Option("--out", "-o", help="Split folder to create (required).", show_default=False)] = None,
    test_size: Annotated[
        Optional[str],
        typer.Option(
            "--test-size",
            help="Test part: fraction (0.2) or count (500); 0 = none. Default 0.2, or no test part with --folds.",
            show_default=False,
        ),
    ] = None,
    valid_size: Annotated[
        Optional[str],
        typer.Option(
            "--valid-size",
            help="Valid part: fraction or count; 0 = none. Default 0.1 (of all documents; of train with --train).",
            show_default=False,
        ),
    ] = None,
    folds: Annotated[
        Optional[int], typer.Option("--folds", help="K stratified folds fold0..fold{K-1} instead of train/valid.", show_default=False)
    ] = None,
    order: Annotated[int, typer.Option("--order", help="1: balance labels; 2: also label pairs.")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Seed of every random choice.")] = 0,
    method: Annotated[str, typer.Option("--method", help="iterative, random or skmultilearn (reference implementation).")] = "iterative",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing split folder.")] = False,
    show_labels: Annotated[bool, typer.Option("--show-labels", help="Also print document counts per label and part.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
    train: Annotated[Optional[Path], typer.Option("--train", help="Existing train part (with --test).", show_default=False)] = None,
    test: Annotated[Optional[Path], typer.Option("--test", help="Existing test part (with --train).", show_default=False)] = None,
    valid: Annotated[
        Optional[Path], typer.Option("--valid", help="Existing valid part; else carved from train.", show_default=False)
    ] = None,
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
) -> None:
    """Split a dataset into stratified train/valid/test parts (or k folds) and write a split folder.

    Iterative stratification (Sechidis et al. 2011) keeps every label's share the same in each
    part; labels with enough documents appear in every part; part sizes are exact. The table
    compares the split's quality measures with a random split of the same sizes (lower is better).
    """
    with cli_errors(), user_warnings():
        from nlpkit.split import split_files

        options = dataset_options_from(locals())
        _check_args(input, out_dir, train=train, test=test, valid=valid, folds=folds, method=method)
        split, result, manifest = split_files(
            out_dir,
            input=input,
            train=train,
            test=test,
            valid=valid,
            options=options,
            test_size=test_size,
            valid_size=valid_size,
            folds=folds,
            order=order,
            seed=seed,
            method=method,
            overwrite=overwrite,
            warn=warn,
        )
    summary = {
        "path": str(split.path),
        "method": method,
        "order": result["order"],
        "seed": seed,
        "parts": manifest["sizes"],
        "quality": result["quality"],
        "random_quality": result["random_quality"],
        "rare_labels": result["rare_labels"],
        "near_duplicates": manifest["near_duplicates"],
        "split_sha256": split.fingerprint,
    }
    if show_labels:
        summary["label_counts"] = {
            name: dict(zip(result["names"], (int(x) for x in row)))
            for name, row in zip(split.label_names, result["label_counts"])
        }
    if as_json:
        typer.echo(json.dumps(summary, ensure_ascii=False, indent=2))
    else:
        _render(summary, result, split.label_names, show_labels)


def _check_args(input, out_dir, *, train, test, valid, folds, method) -> None:
    """Refuse a combination of arguments that cannot make a split, before any file is read."""
    from nlpkit.split import METHODS

    if method not in METHODS:
        raise ConfigError(f"unknown --method {method!r}; use one of: {', '.join(METHODS)}.")
    if out_dir is None:
        raise ConfigError("no output folder; pass --out DIR.")
    given = [name for name, v in (("--train", train), ("--test", test), ("--valid", valid)) if v is not None]
    if input is not None and given:
        raise ConfigError(f"give either INPUT or --train/--test, not both (got INPUT and {given[0]}).")
    if input is None:
        if not given:
            raise ConfigError("nothing to split; give INPUT, or --train FILE --test FILE.")
        if train is None or test is None:
            raise ConfigError("--train and --test go together; give both (and optionally --valid).")
        if folds is not None:
            raise ConfigError("--folds needs INPUT; it does not go with --train/--test.")


def _fmt(x) -> str:
    if isinstance(x, float):
        return f"{x:.3g}" if x else "0"
    return str(x)


def _render(summary: dict, result: dict, label_names: list[str], show_labels: bool) -> None:
    from rich.table import Table

    from nlpkit.cli.inspect import render_near_duplicates

    console = out()
    names = result["names"]
    sizes = Table(title=f"Split {summary['path']} ({summary['method']}, order {summary['order']}, seed {summary['seed']})",
                  title_justify="left")
    sizes.add_column("part")
    sizes.add_column("requested", justify="right")
    sizes.add_column("obtained", justify="right")
    for nm in names:
        sizes.add_row(nm, str(summary["parts"]["requested"][nm]), str(summary["parts"]["obtained"][nm]))
    console.print(sizes)
    quality = Table(title="Quality (lower is better)", title_justify="left")
    quality.add_column("measure")
    quality.add_column("this split", justify="right")
    quality.add_column("random split", justify="right")
    for key in _MEASURES:
        quality.add_row(key, _fmt(summary["quality"][key]), _fmt(summary["random_quality"][key]))
    console.print(quality)
    render_near_duplicates(summary["near_duplicates"])
    if show_labels:
        table = Table(title="Documents per label and part", title_justify="left")
        table.add_column("label")
        for nm in names:
            table.add_column(nm, justify="right")
        table.add_column("total", justify="right")
        for name, row in zip(label_names, result["label_counts"]):
            table.add_row(name, *(str(int(x)) for x in row), str(int(row.sum())))
        console.print(table)


def register(app: typer.Typer) -> None:
    app.command("split")(split_cmd)
