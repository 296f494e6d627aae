"""The output folder of a pretraining run (``--out``): what is in it, and how it changes safely.

Layout (``DIR``):

    DIR/                    the best held-out model: config.json, model.safetensors, tokenizer files
    DIR/last/               the same files for the weights after the last step
    DIR/checkpoints/checkpoint.safetensors   training state for --resume (no pickle)
    DIR/pretrain_config.json        the resolved PretrainConfig
    DIR/pretrain.json               corpus report, fertility, loss curves, throughput
    DIR/token_store/<fingerprint>/  the tokenised corpus (nlpkit.pretrain.store), unless --store DIR

Contract: every file is replaced atomically; a run that fails before training starts leaves
``--out`` as it was (:class:`FreshOut`, :func:`undo_on_failure`); a full disk after a checkpoint
keeps that checkpoint and says how to continue.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Iterator

from nlpkit._io import atomic_write_text, is_full_disk, naming, owned_temp_dir, save_pretrained, to_jsonable
from nlpkit.errors import ConfigError, NlpkitError
from nlpkit.hf.architecture import set_finetune_dropout
from nlpkit.pretrain.config import CONFIG_FILE_NAME, PretrainConfig, option_name
from nlpkit.state_file import load_state, save_state

CHECKPOINT = Path("checkpoints") / "checkpoint.safetensors"
# Written by nlpkit before checkpoints were pickle-free; it is never loaded (--resume says so).
OLD_CHECKPOINT = Path("checkpoints") / "checkpoint.pt"
CONFIG_FILE = CONFIG_FILE_NAME
REPORT_FILE = "pretrain.json"
CHECKPOINT_KEYS = ("model", "optimizer", "step", "config", "data", "rng")


# --- files --------------------------------------------------------------------------------------

def write_json(path: Path, obj) -> None:
    """pretrain.json / pretrain_config.json, atomically, in the format --resume reads back:
    ASCII-escaped, non-finite floats as ``NaN`` / ``Infinity`` (unlike :func:`nlpkit._io.atomic_write_json`,
    which writes them as null)."""
    atomic_write_text(path, json.dumps(obj, indent=2, default=to_jsonable) + "\n", newline=None)


def read_report(out: Path) -> dict:
    """The pretrain.json of ``out`` ({} when absent or unreadable)."""
    try:
        report = json.loads((out / REPORT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return report if isinstance(report, dict) else {}


def save_checkpoint(path: Path, state: dict) -> None:
    """Write the training state atomically (a crash mid-save keeps the old file), without pickle."""
    save_state(path, state)


def load_checkpoint(path: Path) -> dict:
    """The training state saved by :func:`save_checkpoint`; never a pickle (docs/security.md)."""
    state = load_state(path, what="checkpoint", fix="nothing was changed - restore it, or start again with --overwrite")
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise NlpkitError(f"checkpoint {path} is incomplete (no {missing[0]!r}); nothing was changed - "
                          "restore it, or start again with --overwrite.")
    return state


def save_hf_folder(model, tokenizer, folder: Path) -> None:
    """Save an HF folder file by file through a temporary sibling (each file replaced atomically).
    The saved config carries fine-tuning dropout; pretraining ran without dropout."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no tqdm bars on stderr from save_pretrained
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = owned_temp_dir(folder.parent, f".{folder.name or 'model'}.tmp-")
    try:
        set_finetune_dropout(model.config, True)
        try:
            save_pretrained(model, tmp, safe_serialization=True)
        finally:
            set_finetune_dropout(model.config, False)
        save_pretrained(tokenizer, tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for f in sorted(tmp.iterdir()):
            os.replace(f, folder / f.name)
    except BaseException as exc:
        if is_full_disk(exc):  # name the folder asked for, not the hidden temporary one
            raise naming(OSError(exc.errno, exc.strerror), folder) from None
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# --- the transaction ----------------------------------------------------------------------------

def prepare_out(cfg: PretrainConfig, out: Path, *, resume: bool, overwrite: bool) -> dict | None:
    """Check --out against --resume/--overwrite; return the checkpoint state to resume from, if any."""
    ckpt_path = out / CHECKPOINT
    if resume and overwrite:
        raise ConfigError("give --resume or --overwrite, not both.")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; pass a folder path.")
    exists = out.exists() and any(out.iterdir())
    if resume:
        if not ckpt_path.exists() and (out / OLD_CHECKPOINT).exists():
            raise ConfigError(f"{out / OLD_CHECKPOINT} was written by an older nlpkit as a pickle, which nlpkit no "
                              "longer loads; start again with --overwrite.")
        if not ckpt_path.exists():
            if exists and not (out / CONFIG_FILE).exists():
                raise ConfigError(f"--out {out} is not a pretraining folder (no {CONFIG_FILE}); pick another --out.")
            return None  # nothing saved yet: start from step 0 in the same folder
        if not (out / CONFIG_FILE).exists():
            raise NlpkitError(f"{out / CONFIG_FILE} is missing, so the checkpoint cannot be checked; use --overwrite to start again.")
        check_resume_conflicts(cfg, out)
        return load_checkpoint(ckpt_path)
    if exists and not overwrite:
        raise ConfigError(f"--out {out} already exists and is not empty; pass --resume to continue it, "
                          "--overwrite to replace it, or choose another --out.")
    return None


def check_resume_conflicts(cfg: PretrainConfig, out: Path, fields: tuple[str, ...] | None = None) -> None:
    """ConfigError naming the first trajectory-defining option (or of ``fields``) that differs from
    ``out``'s saved config."""
    stored = PretrainConfig.from_dict(json.loads((out / CONFIG_FILE).read_text(encoding="utf-8")))
    conflicts = cfg.resume_conflicts(stored, fields) if fields else cfg.resume_conflicts(stored)
    if conflicts:
        name, old, new = conflicts[0]
        more = f" (and {len(conflicts) - 1} more: {', '.join(option_name(c[0]) for c in conflicts[1:])})" if len(conflicts) > 1 else ""
        raise ConfigError(
            f"--resume: {option_name(name)} is {new!r} but the checkpoint in {out} used {old!r}{more}; "
            f"rerun with {option_name(name)} {old} (or leave it out), or use --overwrite to start again."
        )


class FreshOut:
    """--out for a run that starts from step 0: made by :meth:`make`; :meth:`undo` restores it as it was.

    With --overwrite the old folder is moved aside (a hidden sibling), not deleted, until
    :meth:`keep`: a run that fails before training starts leaves the user's previous model intact.
    """

    def __init__(self, out: Path, replace: bool):
        self.out, self.replace = out, replace
        self.aside: Path | None = None
        self.made: Path | None = None  # the highest folder this run created
        self.kept = False

    def make(self) -> None:
        if self.replace and self.out.exists():
            from nlpkit._io import temp_dir_beside

            self.aside = temp_dir_beside(self.out, "replaced")
            os.replace(self.out, self.aside / self.out.name)
        missing = [p for p in [self.out, *self.out.parents] if not p.exists()]
        self.made = missing[-1] if missing else None
        self.out.mkdir(parents=True, exist_ok=True)

    def undo(self) -> None:
        if self.made is not None:
            shutil.rmtree(self.made, ignore_errors=True)
        elif self.out.is_dir():  # an empty folder the user made: empty again
            for child in self.out.iterdir():
                shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink(missing_ok=True)
        if self.aside is not None:
            if self.out.is_dir() and not any(self.out.iterdir()):
                self.out.rmdir()
            os.replace(self.aside / self.out.name, self.out)
            self.aside.rmdir()

    def keep(self) -> None:
        self.kept = True
        if self.aside is not None:
            shutil.rmtree(self.aside, ignore_errors=True)
            self.aside = None


@contextlib.contextmanager
def undo_on_failure(out: Path, fresh: FreshOut | None, *, is_main: bool) -> Iterator[None]:
    """Around everything from the first file written in ``out``: on any failure (Ctrl-C included)
    before training starts, put ``out`` back as it was; on a full disk later, remove a new folder
    that has no checkpoint yet, or keep the checkpoint and say how to continue with --resume."""
    try:
        yield
    except BaseException as exc:
        if fresh is not None and not fresh.kept:
            fresh.undo()
        elif is_full_disk(exc) and is_main:
            if fresh is not None and not (out / CHECKPOINT).is_file():
                fresh.undo()  # nothing to resume from: leave no half-written --out behind
            elif (out / CHECKPOINT).is_file():  # a valid checkpoint stays, so the run can go on
                where = f" while writing {exc.filename}" if exc.filename else ""
                raise NlpkitError(f"no space left on the device{where}; free some space, then continue with the "
                                  f"same command plus --resume ({out} keeps its last checkpoint).") from None
        raise
