"""Split folders: ``split.json`` plus one canonical JSONL file per part, in one label space.

:func:`write_split` writes one atomically (a temporary folder moved into place; never replacing
something that is not a split folder), :func:`load_split` reads one back and checks every part
against the sha256 its manifest records, and :func:`fold_split` turns fold k of a k-fold split into
an ordinary split that experiments run on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from nlpkit._io import is_full_disk, naming, temp_dir_beside
from nlpkit.data.convert import read_dataset
from nlpkit.data.dataset import TASKS, Dataset, DatasetOptions, join_datasets
from nlpkit.data.opener import file_sha256
from nlpkit.data.writer import json_value, write_dataset
from nlpkit.errors import ConfigError, DataError

_PART_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
_FOLD = re.compile(r"^fold\d+$")


@dataclass
class Split:
    """A split folder: ``split.json`` plus one canonical JSONL file per part, in one label space."""

    path: Path
    manifest: dict
    parts: dict[str, Dataset]
    label_names: list[str]
    task: str

    @property
    def train(self) -> Dataset | None:
        return self.parts.get("train")

    @property
    def valid(self) -> Dataset | None:
        return self.parts.get("valid")

    @property
    def test(self) -> Dataset | None:
        return self.parts.get("test")

    @property
    def folds(self) -> list[Dataset]:
        """fold0, fold1, ... in numeric order (empty when the split is not k-fold)."""
        names = sorted((n for n in self.parts if _FOLD.match(n)), key=lambda n: int(n[4:]))
        return [self.parts[n] for n in names]

    @property
    def fingerprint(self) -> str:
        return self.manifest["split_sha256"]

    @property
    def test_fingerprint(self) -> str | None:
        test = self.parts.get("test")
        return test.fingerprint() if test is not None else None


def fold_split(split: Split, fold: int) -> Split:
    """Fold ``fold`` of a k-fold split as a train/test split that experiments can run on.

    Without a held-out test part (``nlpkit split --folds K``), fold ``fold`` is the test part and
    the other folds are train (cross-validation: valid is carved from train as usual). With one
    (``--folds K --test-size ...``), fold ``fold`` is valid, the other folds train, and the test
    part stays the test part. The view has its own fingerprint, so runs on different folds are
    never compared with one another.
    """
    folds = split.folds
    if not folds:
        raise ConfigError(f"--fold applies to a k-fold split (made with `nlpkit split --folds K`); "
                          f"{split.path} has parts {', '.join(sorted(split.parts))}.")
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < len(folds):
        raise ConfigError(f"--fold {fold} is out of range: {split.path} has folds 0..{len(folds) - 1}.")
    train = join_datasets(*(f for i, f in enumerate(folds) if i != fold))
    held = "valid" if split.test is not None else "test"
    parts = {"train": train, held: folds[fold]}
    old_info = split.manifest.get("parts") or {}
    info = {"train": {"n_docs": len(train), "folds": [f"fold{i}" for i in range(len(folds)) if i != fold]},
            held: old_info.get(f"fold{fold}", {})}
    if split.test is not None:
        parts["test"], info["test"] = split.test, old_info.get("test", {})
    fingerprints = {name: ds.fingerprint() for name, ds in parts.items()}
    manifest = {**split.manifest, "fold": fold, "parts": info,
                "split_sha256": _split_sha256({**fingerprints, "fold": str(fold), "of": split.fingerprint})}
    return Split(path=split.path, manifest=manifest, parts=parts, label_names=list(split.label_names),
                 task=split.task)


def load_experiment_split(path, fold: int | None = None, *, option: str = "--fold") -> Split:
    """The split an experiment runs on: the folder itself, or fold ``fold`` of a k-fold split
    (:func:`fold_split`). A k-fold split without ``fold`` is a ConfigError naming ``option``.
    ``path`` may be a Split already loaded (e.g. a learning-curve point's view of one)."""
    split = path if isinstance(path, Split) else load_split(path)
    if fold is not None:
        return fold_split(split, fold)
    if split.folds:
        raise ConfigError(f"{path} is a k-fold split: choose a fold with {option} N (0..{len(split.folds) - 1}).")
    return split


def _split_sha256(fingerprints: dict[str, str]) -> str:
    # Part names are included so that swapping train and test changes the hash.
    payload = "\n".join(sorted(f"{name}:{fp}" for name, fp in fingerprints.items()))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def write_split(path, parts: dict[str, Dataset], manifest: dict, overwrite: bool = False) -> Split:
    """Write a split folder atomically and return it.

    Parameters
    ----------
    path
        Output folder; must not exist unless ``overwrite`` (then only a split folder is replaced).
    parts
        Part name -> Dataset ("train", "valid", "test" or "fold0".."foldK-1"); all are re-indexed
        onto the sorted union of their label names.
    manifest
        Anything to record (source, seed, method, ...); merged with label_names, task, parts,
        split_sha256. Written with sorted keys and no timestamps: same input, same bytes.
    overwrite
        Replace an existing split folder.
    """
    path = Path(path)
    if not parts:
        raise DataError("a split needs at least one part; nothing to write")
    for name in parts:
        if not _PART_NAME.match(name):
            raise DataError(f"bad split part name '{name}'; use letters, digits, '-' and '_'")
    _check_output_dir(path, overwrite)

    names = sorted(set().union(*(ds.label_names for ds in parts.values())))
    tasks = {ds.task for ds in parts.values()}
    task = "multi" if "multi" in tasks else "single"
    # dataclasses.replace: never mutate the caller's datasets (with_label_names may return self).
    aligned = {name: dataclasses.replace(ds.with_label_names(names), task=task) for name, ds in parts.items()}

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = None
    try:
        # Inside the try: a Ctrl-C right after the folder is made must still remove it.
        tmp = temp_dir_beside(path)
        info: dict[str, dict] = {}
        fingerprints: dict[str, str] = {}
        for name in sorted(aligned):
            ds = aligned[name]
            filename = f"{name}.jsonl"
            write_dataset(ds, tmp / filename)
            fingerprints[name] = ds.fingerprint()
            info[name] = {
                "file": filename,
                "n_docs": len(ds),
                "sha256": file_sha256(tmp / filename),
                "fingerprint": fingerprints[name],
            }
        full = dict(manifest)
        full.update(
            {
                "label_names": names,
                "task": task,
                "parts": info,
                "split_sha256": _split_sha256(fingerprints),
            }
        )
        text = json.dumps(json_value(full), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        (tmp / "split.json").write_text(text, encoding="utf-8", newline="\n")
        _move_into_place(tmp, path, overwrite)
    except BaseException as exc:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
        if is_full_disk(exc) and (tmp is None or exc.filename is None or str(exc.filename).startswith(str(tmp))):
            # Name the split folder asked for, not a file in the hidden temporary one.
            raise naming(OSError(exc.errno, exc.strerror), path) from None
        raise
    for name, ds in aligned.items():
        aligned[name] = dataclasses.replace(ds, source=str(path / f"{name}.jsonl"), n_dropped=0)
    return Split(path=path, manifest=json.loads(text), parts=aligned, label_names=names, task=task)


def _check_output_dir(path: Path, overwrite: bool) -> None:
    if not path.exists() and not path.is_symlink():
        return
    if not overwrite:
        raise DataError(f"output folder exists: {path}; choose another --out or pass --overwrite")
    if path.is_dir() and not path.is_symlink() and not any(path.iterdir()):
        return  # an empty folder holds nothing to lose
    if not path.is_dir() or path.is_symlink() or not (path / "split.json").is_file():
        # Never delete something that is not ours, even with --overwrite.
        raise DataError(
            f"refusing to overwrite {path}: it is not a split folder (no split.json); choose another --out"
        )


def _move_into_place(tmp: Path, path: Path, overwrite: bool) -> None:
    if not path.exists():
        try:
            os.rename(tmp, path)
            return
        except OSError:
            if not path.exists():
                raise
    # The path exists (now): replace it only with overwrite, keeping the old one until the new is in.
    _check_output_dir(path, overwrite)
    old = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.old-"))
    os.rmdir(old)
    os.rename(path, old)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.rename(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


def load_split(path) -> Split:
    """Load a split folder written by :func:`write_split` (checked against its manifest)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"split folder not found: {path}; make one with `nlpkit split`")
    if not path.is_dir():
        raise DataError(f"not a split folder: {path} (not a directory); make one with `nlpkit split`")
    manifest_path = path / "split.json"
    if not manifest_path.is_file():
        raise DataError(f"not a split folder: {path} (no split.json); make one with `nlpkit split`")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{manifest_path}:{exc.lineno}:{exc.colno}: malformed JSON ({exc.msg}); re-create the split with `nlpkit split --overwrite`"
        ) from None
    except UnicodeDecodeError:
        raise DataError(
            f"{manifest_path} is not UTF-8 text; re-create the split with `nlpkit split --overwrite`"
        ) from None
    part_info = manifest.get("parts") if isinstance(manifest, dict) else None
    names = manifest.get("label_names") if isinstance(manifest, dict) else None
    task = manifest.get("task") if isinstance(manifest, dict) else None
    if not isinstance(part_info, dict) or not isinstance(names, list) or task not in TASKS:
        raise DataError(
            f"{manifest_path} lacks 'parts', 'label_names' or 'task'; re-create the split with `nlpkit split --overwrite`"
        )
    if "train" not in part_info and not any(_FOLD.match(n) for n in part_info):
        raise DataError(
            f"split {path} has no train part (parts: {', '.join(sorted(part_info)) or 'none'});"
            f" re-create it with `nlpkit split`"
        )
    parts: dict[str, Dataset] = {}
    # Parts are written by nlpkit: a label "NaN" in them was read as a label (--na-values '').
    opts = DatasetOptions(format="jsonl", task=task, na_values=())
    for name in sorted(part_info):
        info = part_info[name]
        filename = info.get("file", f"{name}.jsonl") if isinstance(info, dict) else f"{name}.jsonl"
        if not isinstance(filename, str) or Path(filename).name != filename or filename.startswith("."):
            raise DataError(
                f"{manifest_path}: part '{name}' names file {filename!r}, not a plain file name in the folder;"
                f" re-create the split with `nlpkit split --overwrite`"
            )
        part_path = path / filename
        if not part_path.is_file():
            raise DataError(
                f"split part '{name}' listed in {manifest_path} is missing: {part_path};"
                f" re-create the split with `nlpkit split --overwrite`"
            )
        expected = info.get("sha256") if isinstance(info, dict) else None
        if expected and file_sha256(part_path) != expected:
            raise DataError(
                f"split part {part_path} changed after the split was written (sha256 differs from {manifest_path});"
                f" re-create the split with `nlpkit split --overwrite`"
            )
        parts[name] = read_dataset(part_path, opts).with_label_names(names)
    return Split(path=path, manifest=manifest, parts=parts, label_names=list(names), task=task)


def split_folder_extras(path) -> tuple[str | None, list[str]]:
    """``(split_sha256, entries)`` of an existing split folder: its fingerprint, and the names of
    what it holds besides the split's own files (folders with a trailing ``/``; hidden ones left
    out). ``(None, [])`` when ``path`` is not a readable split folder."""
    path = Path(path)
    try:
        manifest = json.loads((path / "split.json").read_text(encoding="utf-8"))
        parts = manifest["parts"]
        own = {"split.json"} | {info.get("file", f"{name}.jsonl") for name, info in parts.items()}
        entries = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir()
                         if p.name not in own and not p.name.startswith("."))
        return manifest.get("split_sha256"), entries
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None, []
