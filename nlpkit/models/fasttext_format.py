"""A structural check of fastText's ``.bin`` files, made before fastText reads one.

fastText trusts the sizes a model file states: a dictionary size of 2**31 - 1 has it allocate
many gigabytes (inside C++, deaf to SIGTERM), and a file cut short loads with whatever its
matrices lack. :func:`check_model_file` walks the file as fastText's ``FastText::loadModel``
reads it (src/fasttext.cc, args.cc ``Args::load``, dictionary.cc ``Dictionary::load``,
densematrix.cc ``DenseMatrix::load``) and checks every size against the bytes that are left
before going on, so a damaged or crafted file costs a pass over its dictionary, never an allocation
it asks for. Only the dense supervised models nlpkit writes are accepted (no quantized ``.ftz``).
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

from nlpkit.errors import DataError
from nlpkit.models.base import RERUN

# how fastText tells a label from a word in its training files (args.cc, label = "__label__")
LABEL_PREFIX = "__label__"

# fasttext.h: FASTTEXT_FILEFORMAT_MAGIC_INT32, and the versions FastText::checkModel accepts
# (11 is read as 12, with maxn reset for supervised models)
MAGIC = 793712314
VERSIONS = (11, 12)
# args.cc, Args::save: dim ws epoch minCount neg wordNgrams loss model bucket minn maxn
# lrUpdateRate (int32 each), then t (double)
_SIGNATURE = struct.Struct("<ii")
_ARGS = struct.Struct("<12id")
# dictionary.cc, Dictionary::save: size nwords nlabels (int32), ntokens pruneidx_size (int64)
_DICT_HEAD = struct.Struct("<iiiqq")
# after each entry's NUL-terminated word: its count (int64) and type (int8: 0 word, 1 label)
_ENTRY_TAIL = struct.Struct("<qb")
_MIN_ENTRY = 1 + _ENTRY_TAIL.size  # an empty word's NUL, then the tail
# densematrix.cc, DenseMatrix::save: m, n (int64), then m * n float32
_MATRIX_HEAD = struct.Struct("<qq")
_FLOAT = 4
_C_INT = 2**31 - 1
_LOSSES = range(1, 5)  # args.h, loss_name: hs, ns, softmax, ova
_SUPERVISED = 3  # args.h, model_name::sup
_LABEL = 1  # dictionary.h, entry_type::label


class _Damaged(Exception):
    """What is wrong with the file (becomes the detail of a DataError)."""


def check_model_file(path: str | Path) -> None:
    """Check that ``path`` is a whole fastText supervised model, as fastText would read it.

    Every size read from the file is checked against the bytes left before anything of that size
    is read; the file must end exactly where the model does. The matrices' values are not read.

    Raises
    ------
    DataError
        One line naming the file and what is wrong with it.
    OSError
        When the file cannot be opened or read.
    """
    path = Path(path)
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        try:
            if size == 0:
                raise _Damaged("the file is empty")
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
                _check(data, size)
        except _Damaged as exc:
            raise DataError(f"cannot read the fasttext model in {path}: {exc}; the file is damaged or is "
                            f"not a fastText model. {RERUN}") from None


def _check(data: mmap.mmap, size: int) -> None:
    pos = 0

    def take(layout: struct.Struct, what: str) -> tuple:
        nonlocal pos
        if size - pos < layout.size:
            raise _Damaged(f"it ends in the {what} (byte {size:,})")
        values = layout.unpack_from(data, pos)
        pos += layout.size
        return values

    def flag(what: str) -> None:
        nonlocal pos
        if pos >= size:
            raise _Damaged(f"it ends before the {what} flag (byte {size:,})")
        if data[pos] != 0:  # a quantized matrix follows (fasttext.cc, loadModel)
            raise _Damaged(f"its {what} matrix is quantized (.ftz), which nlpkit does not write")
        pos += 1

    def matrix(what: str, rows: int, dim: int) -> None:
        nonlocal pos
        m, n = take(_MATRIX_HEAD, f"{what} matrix's header")
        if m != rows or n != dim:
            raise _Damaged(f"its {what} matrix is {m:,} x {n:,} where the header implies {rows:,} x {dim:,}")
        need = m * n * _FLOAT
        if size - pos < need:
            raise _Damaged(f"its {what} matrix needs {need:,} bytes but only {size - pos:,} are left "
                           f"(the file is cut short)")
        pos += need

    magic, version = take(_SIGNATURE, "signature")
    if magic != MAGIC:
        raise _Damaged(f"it does not start with fastText's magic number {MAGIC}")
    if version not in VERSIONS:
        raise _Damaged(f"its format version is {version}; fastText reads {' and '.join(map(str, VERSIONS))}")
    (dim, _ws, _epoch, _min_count, _neg, word_ngrams, loss, model, bucket, minn, maxn, _lr_update_rate,
     _t) = take(_ARGS, "arguments")
    if model != _SUPERVISED:
        raise _Damaged(f"it is not a supervised (classification) model (model {model})")
    for name, value, low in (("dim", dim, 1), ("wordNgrams", word_ngrams, 1), ("bucket", bucket, 0),
                             ("minn", minn, 0), ("maxn", maxn, 0)):
        if value < low:
            raise _Damaged(f"its {name} is {value}")
    if loss not in _LOSSES:
        raise _Damaged(f"its loss is {loss}, which fastText does not know")

    n_entries, n_words, n_labels, n_tokens, pruned = take(_DICT_HEAD, "dictionary's header")
    # Before anything of that size: fastText allocates for every entry, and a hash table of
    # size / 0.7 int32 (dictionary.cc, Dictionary::load)
    if n_entries < 0 or n_entries > (size - pos) // _MIN_ENTRY:
        raise _Damaged(f"its dictionary claims {n_entries:,} entries but only {size - pos:,} bytes follow "
                       f"(each entry takes at least {_MIN_ENTRY})")
    if n_words < 0 or n_labels < 1 or n_words + n_labels != n_entries:
        raise _Damaged(f"its dictionary claims {n_entries:,} entries as {n_words:,} words and {n_labels:,} labels")
    if n_words + bucket > _C_INT:  # fastText indexes an n-gram's row as nwords + its bucket, an int32
        raise _Damaged(f"its {n_words:,} words and {bucket:,} buckets are more rows than fastText can index")
    if n_tokens < 0:
        raise _Damaged(f"its dictionary claims {n_tokens:,} tokens")
    if pruned >= 0:  # fastText writes -1 unless it pruned the dictionary while quantizing
        raise _Damaged("its dictionary is pruned, as only quantized models (.ftz) are, which nlpkit does not write")
    # fastText keeps words first, then labels (dictionary.cc, threshold sorts by type)
    for i in range(n_entries):
        end = data.find(b"\0", pos, size - _ENTRY_TAIL.size)
        if end < 0:
            raise _Damaged(f"its dictionary's entry {i + 1:,} of {n_entries:,} runs past the end of the file")
        _count, kind = _ENTRY_TAIL.unpack_from(data, end + 1)
        if kind != (_LABEL if i >= n_words else 0):
            raise _Damaged(f"its dictionary's entry {i + 1:,} is of type {kind} where "
                           f"{n_words:,} words and then {n_labels:,} labels are stated")
        pos = end + 1 + _ENTRY_TAIL.size

    flag("input")
    matrix("input", n_words + bucket, dim)  # a row per word, then per n-gram bucket
    flag("output")
    matrix("output", n_labels, dim)  # a row per label
    if pos != size:
        raise _Damaged(f"{size - pos:,} bytes follow the end of the model (byte {pos:,})")
