"""``nlpkit pretrain``: train a domain WordPiece tokenizer and a BERT-style encoder from scratch (MLM)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from nlpkit.cli._common import (DropEmptyOpt, EncodingOpt, FormatOpt, IdColOpt, LabelColOpt, LabelColsOpt,
                                LabelSepOpt, NaValuesOpt, TaskOpt, TextColOpt, cli_errors, user_warnings,
                                dataset_options_from, err, out)

HELP = (
    "Pretrain a domain encoder: WordPiece tokenizer + BERT/ModernBERT masked-language model.\n\n"
    "CORPUS is a split folder (train + valid texts; test is never read), a dataset file, a .txt file "
    "(one document per line), a folder of .txt files (one document each), or several files / a quoted glob "
    "pattern; .gz and .zst files are read compressed. The corpus is streamed and tokenised once into a token "
    "store (DIR/token_store, or --store) that later runs reuse; --prepare-only builds it and stops.\n\n"
    "DIR gets a Hugging Face folder (the best checkpoint; DIR/last/ = last weights) that AutoModelForMaskedLM, "
    "AutoModelForSequenceClassification and AutoTokenizer load.\n\n"
    "Under torchrun / accelerate launch it trains data-parallel; the global batch is "
    "batch-size x grad-accum x processes, as in one process."
)

# Options with CLI default None: with --resume, one left out is taken from the checkpoint's
# config, and one given explicitly is checked against it.
def pretrain_cmd(
    corpus: Annotated[list[Path], typer.Argument(help="Split folder, dataset file, .txt file, folder of .txt files, or files / a glob.")],
    *,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder (HF model + tokenizer + checkpoints).")],
    size: Annotated[Optional[str], typer.Option(help="Preset: tiny 2x128, mini 4x256, small 4x512, medium 8x512, base 12x768. Default mini.")] = None,
    arch: Annotated[Optional[str], typer.Option(help="bert (default) or modernbert (rotary, GeGLU, local/global attention; long documents).")] = None,
    layers: Annotated[Optional[int], typer.Option(help="Layers (overrides the preset).")] = None,
    hidden: Annotated[Optional[int], typer.Option(help="Hidden size (overrides the preset).")] = None,
    heads: Annotated[Optional[int], typer.Option(help="Attention heads. Default hidden/64.")] = None,
    vocab_size: Annotated[Optional[int], typer.Option("--vocab-size", help="WordPiece vocabulary size. Default 16384.")] = None,
    max_length: Annotated[Optional[int], typer.Option("--max-length", help="Tokens per packed block = position embeddings. Default 128.")] = None,
    steps: Annotated[Optional[int], typer.Option(help="Optimizer steps (default 1000 if no --epochs/--time-budget).")] = None,
    epochs: Annotated[Optional[float], typer.Option(help="Passes over the packed corpus.")] = None,
    time_budget: Annotated[Optional[str], typer.Option("--time-budget", help="Train for this long, e.g. 30m, 1h30m, 90s.")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Blocks per micro-batch per process. Default 32.")] = None,
    grad_accum: Annotated[Optional[int], typer.Option("--grad-accum", help="Micro-batches per optimizer step. Default 1.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Peak learning rate. Default from the preset.")] = None,
    warmup: Annotated[Optional[float], typer.Option(help="Warm-up: share of training (<1) or steps (>=1). Default 0.06.")] = None,
    schedule: Annotated[Optional[str], typer.Option(help="Decay after warm-up: linear (default) or cosine.")] = None,
    clip: Annotated[Optional[float], typer.Option(help="Gradient-norm clipping; 0 disables. Default 1.0.")] = None,
    mlm_prob: Annotated[Optional[float], typer.Option("--mlm-prob", help="Share of tokens masked. Default 0.15.")] = None,
    whole_word_mask: Annotated[Optional[bool], typer.Option("--whole-word-mask/--no-whole-word-mask", help="Mask all pieces of a word together.")] = None,
    lowercase: Annotated[Optional[bool], typer.Option("--lowercase/--no-lowercase", help="Lower-case text in the tokenizer. Default on.")] = None,
    strip_accents: Annotated[Optional[bool], typer.Option("--strip-accents/--keep-accents", help="Strip accents. Default: when lower-casing.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for everything random. Default 0.")] = None,
    eval_every: Annotated[int, typer.Option("--eval-every", help="Held-out MLM loss every N steps.")] = 100,
    save_every: Annotated[int, typer.Option("--save-every", help="Checkpoint every N steps.")] = 200,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the model.")] = False,
    precision: Annotated[str, typer.Option(help="auto (bf16 autocast where the GPU/CPU does bf16 natively), fp32 or bf16.")] = "auto",
    threads: Annotated[Optional[int], typer.Option(help="CPU threads for torch (1 is fastest on a busy machine).")] = None,
    compare_tokenizer: Annotated[Optional[Path], typer.Option("--compare-tokenizer", help="Reference tokenizer folder for the fertility report.")] = None,
    tokenizer: Annotated[Optional[Path], typer.Option("--tokenizer", help="Reuse this tokenizer folder instead of training one.")] = None,
    init_from: Annotated[Optional[Path], typer.Option("--init-from", help="Continue pretraining this HF MLM folder (its tokenizer).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from DIR's last checkpoint.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing DIR.")] = False,
    runs_dir: Annotated[Optional[Path], typer.Option("--runs-dir", help="Run registry folder. Default $NLPKIT_RUNS_DIR or ./runs.")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the final report as JSON on stdout.")] = False,
    prepare_only: Annotated[bool, typer.Option("--prepare-only", help="Train the tokenizer and build the token store, then stop (continue with --resume).")] = False,
    store: Annotated[Optional[Path], typer.Option("--store", help="Token store folder shared between runs. Default DIR/token_store.")] = None,
    num_proc: Annotated[Optional[int], typer.Option("--num-proc", help="Processes tokenising the corpus. Default min(cores, 4).")] = None,
    tokenizer_sample_docs: Annotated[Optional[int], typer.Option("--tokenizer-sample-docs", help="Train the tokenizer on the first N training documents only.")] = None,
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
    with cli_errors(on_interrupt=lambda: _resume_hint(out_dir)), user_warnings():
        from nlpkit.pretrain.config import CONFIG_FILE_NAME, PretrainConfig, parse_duration

        given = {k: v for k, v in dict(
            size=size, arch=arch, layers=layers, hidden=hidden, heads=heads, vocab_size=vocab_size,
            max_length=max_length, lowercase=lowercase, strip_accents=strip_accents, batch_size=batch_size,
            grad_accum=grad_accum, lr=lr, warmup=warmup, schedule=schedule, clip=clip, mlm_prob=mlm_prob,
            whole_word_mask=whole_word_mask, seed=seed,
            init_from=str(init_from) if init_from else None, tokenizer=str(tokenizer) if tokenizer else None,
        ).items() if v is not None}
        # Only the options the user changed go into the config (and so into resume checks).
        from nlpkit.data import DatasetOptions

        data_opts, data_default = dataset_options_from(locals()), DatasetOptions()
        dataset_options = {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(data_opts).items()
                           if v != getattr(data_default, k)}
        length = dict(steps=steps, epochs=epochs, time_budget=parse_duration(time_budget))
        common = dict(corpus=str(corpus[0]) if len(corpus) == 1 else [str(c) for c in corpus], out=str(out_dir),
                      eval_every=eval_every, save_every=save_every, compile=compile, threads=threads,
                      precision=precision, dataset_options=dataset_options, num_proc=num_proc,
                      store=str(store) if store else None,
                      compare_tokenizer=str(compare_tokenizer) if compare_tokenizer else None)
        if tokenizer_sample_docs is not None:
            common["tokenizer_sample_docs"] = tokenizer_sample_docs
        stored_path = out_dir / CONFIG_FILE_NAME
        # a folder made by --prepare-only holds a tokenizer and a token store, no model: its model and
        # training options are the ones given now
        if resume and stored_path.exists() and not _prepared(out_dir):
            # Resume: options left out come from the checkpoint's config; given ones are checked.
            try:
                base = PretrainConfig.from_dict(json.loads(stored_path.read_text(encoding="utf-8")))
            except (ValueError, TypeError) as exc:
                from nlpkit.errors import NlpkitError

                raise NlpkitError(f"{stored_path} is not valid JSON ({exc}); use --overwrite to start again.") from None
            for key, value in {**given, **common}.items():
                setattr(base, key, value)
            if any(v is not None for v in length.values()):
                base.steps, base.epochs, base.time_budget = length["steps"], length["epochs"], length["time_budget"]
            cfg = base
        else:
            cfg = PretrainConfig(**{**given, **common, **length})
        _run(cfg, resume=resume, overwrite=overwrite, runs_dir=runs_dir, json_out=json_out, prepare_only=prepare_only)


def _prepared(out_dir: Path) -> bool:
    from nlpkit.pretrain.output import read_report

    return read_report(out_dir).get("status") == "prepared"


def _resume_hint(out_dir: Path) -> str | None:
    """After Ctrl-C / SIGTERM: where the training state is and how to go on (None if nothing was kept)."""
    from nlpkit.pretrain.config import CONFIG_FILE_NAME
    from nlpkit.pretrain.output import CHECKPOINT

    if not (out_dir / CONFIG_FILE_NAME).is_file():
        return None
    saved = ("keeps the last checkpoint" if (out_dir / CHECKPOINT).is_file()
             else "has no checkpoint yet, so training restarts at step 0")
    return f"{out_dir} {saved}; continue with the same command plus --resume."


class _StoreProgress:
    """The token store's build on stderr: documents and MB of text tokenised (shown from the first shard)."""

    def __init__(self, console):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(TextColumn("[bold]token store"), BarColumn(), TextColumn("{task.fields[docs]:,} documents"),
                                 TextColumn("{task.fields[mb]:,.1f} MB"), TimeElapsedColumn(), console=console,
                                 transient=True)
        self.task = None
        self.shown = console.is_terminal  # in a log file a bar that is wiped would leave an empty line

    def __call__(self, docs: int, nbytes: int) -> None:
        if not self.shown:
            return
        if self.task is None:
            self.task = self.progress.add_task("store", total=None, docs=0, mb=0.0)
            self.progress.start()
        self.progress.update(self.task, docs=docs, mb=nbytes / 1e6)

    def stop(self) -> None:
        if self.progress.live.is_started:
            self.progress.stop()


def _run(cfg, *, resume: bool, overwrite: bool, runs_dir, json_out: bool, prepare_only: bool = False) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    from nlpkit.pretrain import pretrain

    console = err()
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed:.0f}/{task.total:.0f}"),
        TextColumn("loss {task.fields[loss]:.3f}"), TextColumn("{task.fields[tps]:,.0f} tok/s"),
        TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False,
    )
    store_progress = _StoreProgress(console)
    try:  # pretrain starts the display when training starts
        result = pretrain(cfg, resume=resume, overwrite=overwrite, runs_root=runs_dir, progress=progress,
                          log=lambda m: progress.console.print(m, markup=False, highlight=False),
                          prepare_only=prepare_only, store_progress=store_progress)
    finally:
        store_progress.stop()
        if progress.live.is_started:
            progress.stop()
    if prepare_only:
        if result.report.get("store"):
            _print_prepared(result, json_out)
        return
    if not result.report.get("config"):
        return  # not rank 0 under DDP: rank 0 prints the summary
    _print_summary(result, json_out)


def _print_prepared(result, json_out: bool) -> None:
    """--prepare-only: corpus size, tokens, where the store is and whether it was reused."""
    rep = result.report
    c, st = rep["corpus"], rep["store"]
    if json_out:
        out().print_json(json.dumps({"corpus": c, "store": st, "tokenizer": rep["tokenizer"], "out": str(result.out)},
                                    default=str))
        return
    how = "reused" if st["reused"] else f"built in {st['build_seconds']:.1f} s"
    out().print(
        f"corpus {c['source']}: {c['documents'] + c['heldout_documents']:,} documents ({c['heldout_documents']:,} "
        f"held out), {st['text_bytes'] / 1e6:,.1f} MB of text ({st['input_bytes'] / 1e6:,.1f} MB on disk); "
        f"{st['train_tokens'] + st['heldout_tokens']:,} tokens ({st['train_tokens']:,} to train on)\n"
        f"token store {st['path']} ({how})\n"
        f"to train: the same command with --resume in place of --prepare-only",
        highlight=False, markup=False)


def _print_summary(result, json_out: bool) -> None:
    rep = result.report
    if json_out:
        summary = {k: rep[k] for k in ("steps", "final_eval_loss", "best_eval_loss", "heldout_unigram_entropy",
                                       "throughput", "corpus", "tokenizer")}
        summary.update(out=str(result.out), run=result.run_name)
        out().print_json(json.dumps(summary, default=str))
        return
    from rich.table import Table

    c, tok, tp = rep["corpus"], rep["tokenizer"], rep["throughput"]
    t = Table(title=f"Corpus: {c['source']}")
    for col in ("documents", "words", "characters", "tokens", "median tokens/doc", f"docs > {c['max_length']} tokens"):
        t.add_column(col, justify="right")
    t.add_row(*(f"{x:,}" for x in (c["documents"], c["words"], c["characters"], c["tokens"])),
              f"{c['tokens_per_doc']['median']:.0f}", f"{c['docs_over_max_length']:,}")
    out().print(t)
    ft = Table(title="Tokenizer fertility on held-out text")
    for col in ("tokenizer", "vocab", "tokens/word", "words split", "unknown"):
        ft.add_column(col, justify="right")
    conf = rep.get("config") or {}
    rows = [("reused" if conf.get("init_from") or conf.get("tokenizer") else "trained", tok["heldout"])]
    if "reference" in tok:
        ref = Path(tok["reference"]["path"])
        rows.append((ref.parent.name if ref.name == "model" else ref.name, tok["reference"]))
    for name, f in rows:
        ft.add_row(name, f"{f['vocab_size']:,}", f"{f['tokens_per_word']:.3f}", f"{f['share_words_split']:.1%}",
                   f"{f['share_unk']:.2%}")
    out().print(ft)
    out().print(
        f"{rep['steps']} steps, held-out MLM loss {rep['final_eval_loss']:.4f} (best {rep['best_eval_loss']:.4f}; "
        f"unigram entropy {rep['heldout_unigram_entropy']:.4f})"
        + (f", {tp['tokens_per_s']:,.0f} tokens/s" if tp.get("tokens_per_s") else "") + "; "
        f"model in {result.out}" + (f", run {result.run_name}" if result.run_name else ""),
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command("pretrain", help=HELP)(pretrain_cmd)
