"""The dataset layer: the only code that reads and writes user datasets and split folders.

``opener`` gives every user file's bytes or text (gzip, byte-order marks, encodings); ``readers``
turn a file in any of six formats into one table; ``convert`` turns that table into a
:class:`Dataset` (:func:`read_dataset`); ``writer`` writes a Dataset as canonical JSONL; ``splits``
writes and loads split folders; ``describe`` computes what `nlpkit inspect` shows; ``near_dup`` finds
near-duplicate texts within and across parts. Problems in the
input raise :class:`~nlpkit.errors.DataError` with one line naming the file, the line/row and
column, and the fix. This package imports no model.
"""

from nlpkit.data.convert import read_dataset
from nlpkit.data.dataset import (
    FORMATS,
    NA_VALUES,
    TASKS,
    Dataset,
    DatasetOptions,
    DataWarning,
    dropped_note,
    join_datasets,
)
from nlpkit.data.describe import describe, describe_split
from nlpkit.data.near_dup import near_duplicate_record, near_duplicates, test_ids_with_near_duplicates
from nlpkit.data.opener import file_sha256, is_gzip, read_bytes, read_text_file, text_encoding
from nlpkit.data.readers import MAX_NESTING, dataset_suffix
from nlpkit.data.splits import (
    Split,
    fold_split,
    load_experiment_split,
    load_split,
    split_folder_extras,
    write_split,
)
from nlpkit.data.writer import write_dataset

__all__ = [
    "FORMATS",
    "MAX_NESTING",
    "NA_VALUES",
    "TASKS",
    "DataWarning",
    "Dataset",
    "DatasetOptions",
    "Split",
    "dataset_suffix",
    "describe",
    "describe_split",
    "dropped_note",
    "file_sha256",
    "fold_split",
    "is_gzip",
    "join_datasets",
    "load_experiment_split",
    "load_split",
    "near_duplicate_record",
    "near_duplicates",
    "read_bytes",
    "read_dataset",
    "read_text_file",
    "split_folder_extras",
    "test_ids_with_near_duplicates",
    "text_encoding",
    "write_dataset",
    "write_split",
]
