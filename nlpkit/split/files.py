"""``split_files``: the whole of `nlpkit split` as a plain function.

Every file is read and written through the dataset layer (:mod:`nlpkit.data`); this module only
decides what to split and what the manifest records.
"""

from __future__ import annotations

from pathlib import Path

from nlpkit.data import (
    NA_VALUES,
    DatasetOptions,
    dropped_note,
    file_sha256,
    near_duplicate_record,
    read_dataset,
    split_folder_extras,
    write_split,
)
from nlpkit.errors import ConfigError
from nlpkit.seeds import check_seed
from nlpkit.split.datasets import assemble_split, labels_missing_from_train, missing_labels_notes, split_dataset
from nlpkit.split.sizes import parse_size


def split_files(out_dir, *, input=None, train=None, test=None, valid=None, options=None,
                test_size=None, valid_size=None, folds=None, order=1, seed=0, method="iterative",
                overwrite=False, warn=None):
    """Read a dataset (or existing train/test[/valid] files), split it, and write a split folder.

    The whole of ``nlpkit split`` as a plain function: ``input`` is one dataset file to split, or
    ``train`` and ``test`` (and optionally ``valid``) are parts the user already has. Sizes are
    fractions or counts (strings as on the command line are accepted). ``warn`` is called with
    one-line notes for the user (rare labels, order 2 on single-label data).

    Returns
    -------
    (split, result, manifest): the written :class:`nlpkit.data.Split`, the raw result of
    :func:`split_dataset` / :func:`assemble_split`, and the manifest stored in ``split.json``.
    """
    options = options or DatasetOptions()
    warn = warn or (lambda note: None)
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:  # fail before any work (write_split checks again)
        raise ConfigError(f"output folder exists: {out_dir}; choose another --out or pass --overwrite.")
    seed = check_seed(seed)
    if input is None:
        if train is None or test is None:
            raise ConfigError("give one INPUT file to split, or both --train FILE and --test FILE.")
        # Sizes of parts given as files would be silently ignored: refuse them, as --folds refuses --valid-size.
        if test_size is not None:
            raise ConfigError(f"--test-size does not go with --test FILE (the test part is {test}); drop --test-size.")
        if valid is not None and valid_size is not None:
            raise ConfigError(f"--valid-size does not go with --valid FILE (the valid part is {valid}); drop --valid-size.")
    if folds is not None and valid_size is not None and parse_size(valid_size, "--valid-size") is not None:
        raise ConfigError("--valid-size does not go with --folds (each fold serves as valid in turn); drop one.")
    valid_sz = parse_size("0.1" if valid_size is None else valid_size, "--valid-size")
    test_sz = parse_size(test_size, "--test-size") if test_size is not None else (None if folds else 0.2)
    files = {"input": input} if input is not None else (
        {"train": train, "test": test} | ({"valid": valid} if valid is not None else {}))
    read = {role: read_dataset(path, options) for role, path in files.items()}
    sources = {role: {"path": str(path), "sha256": file_sha256(path)} for role, path in files.items()}
    for role, ds in read.items():
        if options.drop_empty:
            sources[role]["n_dropped"] = ds.n_dropped
        note = dropped_note(ds)
        if note:
            warn(note)
    if input is not None:
        result = split_dataset(read["input"], test_size=test_sz, valid_size=None if folds else valid_sz, folds=folds,
                               order=order, seed=seed, method=method)
    else:
        result = assemble_split(read["train"], read["test"], read.get("valid"), valid_size=valid_sz,
                                order=order, seed=seed, method=method)
    for note in result["notes"]:
        warn(note)
    # Parts the user gave may lack labels that the other parts have (a stratified split never
    # leaves a label out of train unless it is rare, which "rare_labels" already records).
    missing = labels_missing_from_train(result["parts"]) if input is None else {}
    for note in missing_labels_notes(missing):
        warn(note)
    manifest = {
        "created_by": "nlpkit split",
        "sources": sources,
        "method": method,
        "order": result["order"],
        "seed": seed,
        "options": {
            "test_size": test_sz if input is not None else None,
            "valid_size": None if (folds or (input is None and valid is not None)) else valid_sz,
            "folds": folds,
            "order": order,
            "method": method,
            "seed": seed,
            # na_values only when changed: a default split's split.json stays as older nlpkit wrote it
            "dataset": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(options).items()
                        if not (k == "na_values" and v == NA_VALUES)},
        },
        "sizes": {
            "requested": result["requested"],
            "obtained": {nm: len(result["parts"][nm]) for nm in result["names"]},
        },
        "quality": result["quality"],
        "random_quality": result["random_quality"],
        "rare_labels": result["rare_labels"],
    }
    if missing:  # only then: a split without such labels has the same split.json as before
        manifest["labels_missing_from_train"] = missing
    # Computed once here, so that inspect and report read it instead of comparing every text again.
    parts = result["parts"]
    manifest["near_duplicates"] = near_duplicate_record({nm: parts[nm].texts for nm in result["names"]},
                                                        {nm: parts[nm].ids for nm in result["names"]})
    old_sha, leftovers = split_folder_extras(out_dir) if overwrite else (None, [])
    split = write_split(out_dir, result["parts"], manifest, overwrite=overwrite)
    if leftovers:
        what = " (old reports)" if "report/" in leftovers else ""
        runs = ("runs recorded on the old split no longer match the new one; re-run them to compare"
                if old_sha != split.fingerprint else "the split itself is unchanged")
        warn(f"--overwrite replaced the split in {out_dir} and removed {', '.join(leftovers)} from it{what}; {runs}.")
    return split, result, manifest
