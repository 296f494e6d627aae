"""Stratified splitting of multi-label data: pure, seeded functions on a label matrix, and
``split_files``, the `nlpkit split` command as a function.

The algorithms work on a 0/1 label matrix ``y`` (dense array or scipy sparse, rows = documents,
columns = labels) and return a *part index per row*; every file is read and written by
:mod:`nlpkit.data`. The main entry points:

``iterative_split(y, sizes, order=1, seed=0)`` (:mod:`~nlpkit.split.iterative`)
    Sechidis, Tsoumakas & Vlahavas (2011) iterative stratification, with the corrections listed in
    its docstring; ``order=2`` also balances label pairs (Szymanski & Kajdanowicz 2017).
``kfold(y, k, ...)``, ``carve(y, size, ...)``
    k equal folds; one stratified part carved out of a matrix (e.g. a valid part out of train).
``random_split``, ``skmultilearn_split`` (:mod:`~nlpkit.split.peers`)
    The methods compared with: a seeded permutation, and scikit-multilearn 0.2.0's implementation.
``split_quality(y, assignment, n_parts)`` (:mod:`~nlpkit.split.quality`)
    LD, LPD, ED, FZ, FLZ, FZLC, rLD, DCP (definitions in its docstring).
``split_dataset``, ``assemble_split`` (:mod:`~nlpkit.split.datasets`), ``split_files``
    A Dataset, or parts the user already has, split into parts; the same from files to a split folder.

Sizes are given as fractions (``0 < x < 1``, of all rows) or counts (integers >= 1); they are
turned into exact per-part counts by ``resolve_sizes`` and every method returns parts of exactly
those sizes (scikit-multilearn only approximately: it does not enforce them).
"""

from nlpkit.split.datasets import (
    METHODS,
    assemble_split,
    assign_parts,
    labels_missing_from_train,
    missing_labels_notes,
    split_dataset,
)
from nlpkit.split.files import split_files
from nlpkit.split.iterative import LD_WEIGHT, carve, iterative_split, kfold
from nlpkit.split.matrix import label_pairs, rare_labels
from nlpkit.split.peers import random_split, skmultilearn_split
from nlpkit.split.quality import label_table, split_quality
from nlpkit.split.sizes import Size, parse_size, plan_parts, resolve_sizes

__all__ = [
    "LD_WEIGHT",
    "METHODS",
    "Size",
    "assemble_split",
    "assign_parts",
    "carve",
    "iterative_split",
    "kfold",
    "label_pairs",
    "label_table",
    "labels_missing_from_train",
    "missing_labels_notes",
    "parse_size",
    "plan_parts",
    "random_split",
    "rare_labels",
    "resolve_sizes",
    "skmultilearn_split",
    "split_dataset",
    "split_files",
    "split_quality",
]
