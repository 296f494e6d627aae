"""The pretraining corpus as a stream of documents: read a split folder, a dataset file, plain text
(a file, a folder, a list of files or a glob; gzip or zstd compressed), hold out a slice, describe it.

:func:`open_corpus` never holds the corpus in memory: documents are read file by file and line by
line (JSONL and .txt; other dataset formats one file at a time), and the held-out slice is chosen
by a seeded hash of each document's position (:func:`heldout_positions`), which needs only the
number of documents. :func:`read_corpus` is the same corpus as two lists, for small corpora and tests.
"""

from __future__ import annotations

import codecs
import glob
import gzip
import hashlib
import io
import json
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

import numpy as np

from nlpkit.errors import DataError

DATASET_EXTS = {".jsonl", ".json", ".csv", ".tsv", ".parquet"}
COMPRESSED_EXTS = (".gz", ".zst")
GLOB_CHARS = set("*?[")
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
JSONL_CHUNK_LINES = 10_000  # records parsed and checked together (nlpkit.data's rules), then dropped


# --- opening files ------------------------------------------------------------------------------

def open_binary(path: Path) -> BinaryIO:
    """A buffered binary stream of ``path``, decompressed when it holds gzip or zstd data (by its
    magic bytes, whatever its name)."""
    with open(path, "rb") as fh:
        magic = fh.read(4)
    if magic.startswith(_GZIP_MAGIC):
        return io.BufferedReader(gzip.open(path, "rb"))
    if magic == _ZSTD_MAGIC:
        try:
            import zstandard
        except ImportError:
            raise DataError(f"{path} is zstd-compressed and the zstandard package is not installed; "
                            "pip install zstandard, or recompress the file with gzip.") from None
        return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True))
    return open(path, "rb")


def _compression_errors():
    errors: tuple = (EOFError, gzip.BadGzipFile, zlib.error)
    try:
        import zstandard

        errors += (zstandard.ZstdError,)
    except ImportError:
        pass
    return errors


def _damaged(path: Path, exc: BaseException) -> DataError:
    if isinstance(exc, EOFError):
        return DataError(f"cannot read {path}: compressed data ends early: the file is truncated; copy it again")
    return DataError(f"cannot read {path}: damaged compressed data ({exc}); copy it again")


def iter_lines(path: Path, encoding: str = "utf-8") -> Iterator[str]:
    """The lines of a text file (without line ends; "\\r\\n" and a lone "\\r" end lines as well),
    decoded one at a time. A byte that is not ``encoding`` is a DataError naming its line, as
    :func:`nlpkit.data.read_text_file` names it; byte-order marks are honoured as there."""
    from nlpkit.data import text_encoding

    try:
        with open_binary(path) as fh:
            use, skip = text_encoding(path, fh.peek(4096)[:4096], encoding)
            fh.read(skip)
            if "\n".encode(use) != b"\n" or codecs.lookup(use).name.startswith(("utf-16", "utf-32")):
                # not ASCII-compatible: the decoder finds the line ends
                try:
                    for line in io.TextIOWrapper(fh, encoding=use, newline=None):
                        yield line.rstrip("\n")
                except UnicodeDecodeError as exc:
                    raise DataError(f"cannot decode {path} as {use}: {exc.reason}; pass the file's encoding") from None
                return
            offset = skip
            for lineno, raw in enumerate(fh, start=1):
                try:
                    text = raw.decode(use)
                except UnicodeDecodeError as exc:
                    bad = raw[exc.start:exc.start + 1].hex()
                    raise DataError(f"cannot decode {path} as {use}: byte 0x{bad} at byte offset {offset + exc.start} "
                                    f"(line {lineno}); pass the file's encoding, e.g. --encoding latin-1") from None
                offset += len(raw)
                text = text.rstrip("\n").rstrip("\r")
                if "\r" in text:
                    yield from text.split("\r")
                else:
                    yield text
    except _compression_errors() as exc:
        raise _damaged(path, exc) from None


def read_whole_text(path: Path, encoding: str = "utf-8") -> str:
    """One file as one document (a folder of .txt files)."""
    with open(path, "rb") as fh:
        zstd = fh.read(4) == _ZSTD_MAGIC
    if not zstd:
        from nlpkit.data import read_text_file

        return read_text_file(path, encoding)
    return "\n".join(iter_lines(path, encoding))


def base_suffix(path: Path) -> str:
    """The extension that names a file's format, lower-case, under a .gz / .zst suffix."""
    path = Path(path)
    if path.suffix.lower() in COMPRESSED_EXTS:
        return Path(path.stem).suffix.lower()
    return path.suffix.lower()


# --- documents of one file ----------------------------------------------------------------------

def _dataset_options(options: dict):
    from nlpkit.data import DatasetOptions
    from nlpkit.data.dataset import check_options

    # Pretraining needs texts only: an unlabelled corpus (no label column) is the usual case.
    options = {"labels_optional": True, **options}
    return check_options(DatasetOptions(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in options.items()}))


def _read_dataset_texts(path: Path, options: dict) -> list[str]:
    """The texts of a whole dataset file (CSV, TSV, JSON, Parquet: formats that are not read line by line)."""
    from nlpkit.data import read_dataset

    return list(read_dataset(path, _dataset_options(options)).texts)


def _iter_jsonl_texts(path: Path, options: dict) -> Iterator[str]:
    """The texts of a JSONL file, ``JSONL_CHUNK_LINES`` records at a time, each chunk read by
    nlpkit.data's own rules (text columns, empty texts, --drop-empty) with its real line numbers."""
    from nlpkit.data.convert import table_to_dataset
    from nlpkit.data.readers import records_table

    opts = _dataset_options(options)
    records: list[dict] = []
    lines: list[int] = []

    def flush() -> list[str]:
        return list(table_to_dataset(records_table(records, lambda i, ln=list(lines): f"line {ln[i]}"), path, opts).texts)

    for lineno, line in enumerate(iter_lines(path, opts.encoding), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{lineno}:{exc.colno}: malformed JSON ({exc.msg}); fix or remove line {lineno}") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object per line, got {type(obj).__name__};"
                            f' write one {{"text": ...}} object per line')
        records.append(obj)
        lines.append(lineno)
        if len(records) == JSONL_CHUNK_LINES:
            yield from flush()
            records, lines = [], []
    if records:
        yield from flush()


def iter_file_docs(path: Path, kind: str, options: dict) -> Iterator[str]:
    """The non-empty documents of one file, stripped as pretraining reads them."""
    encoding = options.get("encoding", "utf-8")
    if kind == "text-doc":
        text = read_whole_text(path, encoding).strip()
        if text:
            yield text
        return
    if kind == "text-lines":
        docs = (line.strip() for line in iter_lines(path, encoding))
    elif (options.get("format") or ("jsonl" if base_suffix(path) == ".jsonl" else None)) == "jsonl":
        docs = _iter_jsonl_texts(path, options)
    else:
        docs = iter(_read_dataset_texts(path, options))
    for text in docs:
        if text and text.strip():
            yield text


def file_kind(path: Path, options: dict) -> str:
    """How a single corpus file is read: "dataset" (records) or "text-lines" (one document per line)."""
    return "dataset" if base_suffix(path) in DATASET_EXTS or options.get("format") else "text-lines"


# --- the held-out rule --------------------------------------------------------------------------

def _position_keys(seed: int, start: int, stop: int) -> np.ndarray:
    """splitmix64 of (seed, position) for positions [start, stop): a seeded pseudo-random key per
    document position, computed without any other document (Steele et al. 2014)."""
    base = np.random.SeedSequence([seed, 0x5EED]).generate_state(1, np.uint64)[0]
    with np.errstate(over="ignore"):
        z = base + (np.arange(start, stop, dtype=np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def heldout_count(heldout_docs: float, n: int) -> int:
    """How many of ``n`` documents are held out: a share (< 1, at least one) or a number."""
    return max(1, int(round(heldout_docs * n)) if heldout_docs < 1 else int(heldout_docs))


def heldout_positions(n: int, n_held: int, seed: int, chunk: int = 1 << 20) -> np.ndarray:
    """The ``n_held`` positions among ``n`` documents whose seeded keys are smallest, sorted.

    Memory is ``O(n_held + chunk)``: positions are scanned in chunks and only the best
    candidates are kept, so the rule needs the number of documents, never the documents.
    """
    best_pos = np.empty(0, dtype=np.int64)
    best_key = np.empty(0, dtype=np.uint64)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        pos = np.concatenate([best_pos, np.arange(start, stop, dtype=np.int64)])
        key = np.concatenate([best_key, _position_keys(seed, start, stop)])
        if len(pos) > n_held:
            keep = np.argpartition(key, n_held - 1)[:n_held] if n_held else np.empty(0, dtype=np.int64)
            pos, key = pos[keep], key[keep]
        best_pos, best_key = pos, key
    return np.sort(best_pos)


# --- the corpus ---------------------------------------------------------------------------------

class Documents:
    """A re-iterable view of documents (each iteration reads the files again), with a length."""

    def __init__(self, make: Callable[[], Iterator[str]], count: Callable[[], int]):
        self._make, self._count = make, count

    def __iter__(self) -> Iterator[str]:
        return self._make()

    def __len__(self) -> int:
        return self._count()


@dataclass
class CorpusStream:
    """Where the documents are and which are held out; reading happens when iterated."""

    source: str
    kind: str  # "split" | "dataset" | "text-file" | "text-folder" | "files"
    heldout_from: str  # "valid" | "carved"
    files: list[tuple[Path, str]]  # (file, how it is read) for the documents, in order
    heldout_files: list[tuple[Path, str]]  # a split's valid part; [] when the held-out slice is carved
    options: dict
    heldout_docs: float = 0.05
    seed: int = 0
    _n_docs: int | None = field(default=None, repr=False)
    _held: np.ndarray | None = field(default=None, repr=False)

    def _docs_of(self, files) -> Iterator[str]:
        for path, kind in files:
            yield from iter_file_docs(path, kind, self.options)

    def n_documents(self) -> int:
        """Documents in ``files`` (one streaming pass, counted once)."""
        if self._n_docs is None:
            self._n_docs = sum(1 for _ in self._docs_of(self.files))
        return self._n_docs

    def held_positions(self) -> np.ndarray:
        """Positions (in ``files``) of the carved held-out documents; empty for a split with a valid part."""
        if self._held is None:
            if self.heldout_from == "valid":
                self._held = np.empty(0, dtype=np.int64)
            else:
                n = self.n_documents()
                n_held = heldout_count(self.heldout_docs, n)
                if n - n_held < 1:
                    raise DataError(f"{self.source}: only {n} non-empty document(s); need at least 2 "
                                    "(one to train on, one held out).")
                self._held = heldout_positions(n, n_held, self.seed)
        return self._held

    def labelled(self) -> Iterator[tuple[bool, str]]:
        """(held out?, text) for every document: the training files in order, then a split's valid part."""
        held = self.held_positions()
        j = 0
        for i, text in enumerate(self._docs_of(self.files)):
            is_held = j < len(held) and held[j] == i
            j += is_held
            yield bool(is_held), text
        for text in self._docs_of(self.heldout_files):
            yield True, text

    @property
    def train(self) -> Documents:
        return Documents(lambda: (t for h, t in self.labelled() if not h),
                         lambda: self.n_documents() - len(self.held_positions()))

    @property
    def heldout(self) -> Documents:
        if self.heldout_from == "valid":
            return Documents(lambda: self._docs_of(self.heldout_files),
                             lambda: sum(1 for _ in self._docs_of(self.heldout_files)))
        return Documents(lambda: (t for h, t in self.labelled() if h), lambda: len(self.held_positions()))

    def check_not_empty(self) -> None:
        if self.n_documents() - len(self.held_positions()) < 1:
            raise DataError(f"{self.source}: no non-empty documents to train on.")

    def input_bytes(self) -> int:
        return sum(p.stat().st_size for p, _ in self.files + self.heldout_files)

    def fingerprint(self) -> str:
        """sha256 over the bytes of every file read, how each is read and the held-out rule: what
        decides the documents and the slice held out, without reading them as text."""
        from nlpkit.data import file_sha256

        h = hashlib.sha256()
        rule = {"kind": self.kind, "heldout_from": self.heldout_from, "options": self.options,
                "heldout_docs": self.heldout_docs if self.heldout_from == "carved" else None,
                "seed": self.seed if self.heldout_from == "carved" else None}
        h.update(json.dumps(rule, sort_keys=True, default=str).encode("utf-8"))
        for part, files in (("docs", self.files), ("heldout", self.heldout_files)):
            h.update(f"\x00{part}\x00".encode())
            for path, kind in files:
                h.update(f"{kind}\x00{file_sha256(path)}\x00".encode())
        return h.hexdigest()


def _expand(path_spec) -> list[Path] | None:
    """A list of files or a glob pattern -> the files (sorted for a glob); None for one plain path."""
    if isinstance(path_spec, (list, tuple)):
        if len(path_spec) == 1:
            return _expand(path_spec[0])
        paths = []
        for p in path_spec:
            paths.extend(_expand(p) or [Path(p)])
        return paths
    spec = str(path_spec)
    if GLOB_CHARS & set(spec) and not Path(spec).exists():
        found = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
        if not found:
            raise DataError(f"no file matches the corpus pattern {spec!r}; check the path (quote the pattern "
                            "so that nlpkit, not the shell, expands it).")
        return found
    return None


def _split_parts(path: Path) -> tuple[Path, Path | None]:
    """(train file, valid file or None) of a split folder; the test part is never opened."""
    from nlpkit.data import file_sha256

    manifest_path = path / "split.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        parts = manifest["parts"]
        assert isinstance(parts, dict)
    except (OSError, ValueError, KeyError, TypeError, AssertionError):
        raise DataError(f"{manifest_path} is not a valid split manifest; re-create the split with "
                        "`nlpkit split --overwrite`") from None
    if "train" not in parts:
        raise DataError(f"{path}: the split has no train part; pretrain on a split with train (and valid) parts.")
    found = []
    for name in ("train", "valid"):
        info = parts.get(name)
        if info is None:
            found.append(None)
            continue
        filename = info.get("file", f"{name}.jsonl") if isinstance(info, dict) else f"{name}.jsonl"
        part = path / str(filename)
        if Path(str(filename)).name != filename or not part.is_file():
            raise DataError(f"split part '{name}' listed in {manifest_path} is missing: {part}; re-create the split "
                            "with `nlpkit split --overwrite`")
        expected = info.get("sha256") if isinstance(info, dict) else None
        if expected and file_sha256(part) != expected:
            raise DataError(f"split part {part} changed after the split was written (sha256 differs from "
                            f"{manifest_path}); re-create the split with `nlpkit split --overwrite`")
        found.append(part)
    return found[0], found[1]


def open_corpus(path, *, heldout_docs: float = 0.05, seed: int = 0, dataset_options: dict | None = None) -> CorpusStream:
    """The documents to pretrain on, as a stream (nothing is read yet but split manifests).

    Parameters
    ----------
    path : a split folder (``split.json``: train + valid parts, never test), a dataset file
        (.jsonl/.json/.csv/.tsv/.parquet, or any file with ``format`` in ``dataset_options``),
        a ``.txt`` file (one document per line), a folder of ``.txt`` files (one document each),
        or a list of such files / a glob pattern (each file by its extension). Files may be
        gzip- or zstd-compressed (``.jsonl.gz``, ``.txt.zst``).
    heldout_docs : when there is no valid part, the share (< 1) or number of documents held out
        for evaluation and the fertility report: those whose seeded position keys are smallest
        (:func:`heldout_positions`).
    dataset_options : keyword arguments of ``nlpkit.data.DatasetOptions`` for dataset files.
    """
    options = dict(dataset_options or {})
    files = _expand(path)
    if files is not None:
        for p in files:
            if not p.is_file():
                raise DataError(f"corpus file not found: {p}. Pass files, a glob pattern, a split folder or a folder.")
        return CorpusStream(source=str(path if isinstance(path, str) else [str(p) for p in path]), kind="files",
                            heldout_from="carved", files=[(p, file_kind(p, options)) for p in files],
                            heldout_files=[], options=options, heldout_docs=heldout_docs, seed=seed)
    path = Path(path)
    if not path.exists():
        raise DataError(f"corpus not found: {path}. Pass a split folder, a dataset file or a text file/folder.")
    common = dict(source=str(path), options=options, heldout_docs=heldout_docs, seed=seed)
    if path.is_dir() and (path / "split.json").exists():
        train, valid = _split_parts(path)
        opts = {"format": "jsonl", "na_values": []}  # parts are nlpkit's canonical JSONL, whatever --text-col says
        stream = CorpusStream(kind="split", heldout_from="valid", files=[(train, "dataset")],
                              heldout_files=[(valid, "dataset")] if valid else [], **{**common, "options": opts})
        if valid is None or not any(True for _ in stream.heldout):
            stream.heldout_from, stream.heldout_files = "carved", []
        return stream
    if path.is_dir():
        found = sorted(p for pattern in ("*.txt", "*.txt.gz", "*.txt.zst") for p in path.rglob(pattern) if p.is_file())
        if not found:
            raise DataError(f"{path}: a folder without split.json and without .txt files; pass a split folder, "
                            "a dataset file or .txt files.")
        return CorpusStream(kind="text-folder", heldout_from="carved", files=[(p, "text-doc") for p in found],
                            heldout_files=[], **common)
    kind = file_kind(path, options)
    return CorpusStream(kind="dataset" if kind == "dataset" else "text-file", heldout_from="carved",
                        files=[(path, kind)], heldout_files=[], **common)


@dataclass
class Corpus:
    """Training and held-out documents in memory, plus where they came from (small corpora, tests)."""

    train: list[str]
    heldout: list[str]
    source: str
    kind: str  # "split" | "dataset" | "text-file" | "text-folder" | "files"
    heldout_from: str  # "valid" | "carved"
    info: dict = field(default_factory=dict)

    def fingerprint(self) -> str:
        """sha256 over every document (train then held-out), order-sensitive."""
        h = hashlib.sha256()
        for part in (self.train, self.heldout):
            h.update(b"\x00part\x00")
            for text in part:
                h.update(text.encode("utf-8"))
                h.update(b"\x00")
        return h.hexdigest()


def read_corpus(path, *, heldout_docs: float = 0.05, seed: int = 0, dataset_options: dict | None = None) -> Corpus:
    """:func:`open_corpus`, read into two lists (the same documents and held-out slice)."""
    stream = open_corpus(path, heldout_docs=heldout_docs, seed=seed, dataset_options=dataset_options)
    stream.check_not_empty()
    train, heldout = [], []
    for held, text in stream.labelled():
        (heldout if held else train).append(text)
    return Corpus(train=train, heldout=heldout, source=stream.source, kind=stream.kind,
                  heldout_from=stream.heldout_from)


def corpus_report(stats: dict, length_counts: np.ndarray, max_length: int) -> dict:
    """Documents, words, characters and the token-length distribution (after tokenisation).

    ``stats``: source, kind, heldout_from, documents, heldout_documents, words, characters and
    fingerprint of the corpus (the token store's record); ``length_counts[k]``: training documents of
    k tokens (:meth:`nlpkit.pretrain.store.StorePart.length_counts`).
    """
    counts = np.asarray(length_counts, dtype=np.int64)
    n = int(counts.sum())
    sizes = np.arange(len(counts), dtype=np.int64)
    tokens = int((sizes * counts).sum())
    q = [_percentile_of_counts(counts, p) for p in (50, 90, 99)] if n else [0.0, 0.0, 0.0]
    return {
        "source": stats["source"],
        "kind": stats["kind"],
        "heldout_from": stats["heldout_from"],
        "documents": int(stats["documents"]),
        "heldout_documents": int(stats["heldout_documents"]),
        "words": int(stats["words"]),
        "characters": int(stats["characters"]),
        "tokens": tokens,
        "tokens_per_doc": {"mean": tokens / n if n else 0.0, "median": float(q[0]),
                           "p90": float(q[1]), "p99": float(q[2]), "max": int(np.flatnonzero(counts)[-1]) if n else 0},
        "max_length": max_length,
        "docs_over_max_length": int(counts[max(max_length - 1, 0):].sum()),  # [CLS] ... [SEP] must fit
        "fingerprint": stats["fingerprint"],
    }


def _percentile_of_counts(counts: np.ndarray, q: float) -> float:
    """``np.percentile(values, q)`` (linear interpolation) of the values whose histogram is ``counts``."""
    cum = np.cumsum(counts)
    pos = q / 100 * (cum[-1] - 1)
    lo, hi = int(np.floor(pos)), int(np.ceil(pos))
    # the value of rank r (0-based): the first size whose cumulative count exceeds r
    v_lo, v_hi = np.searchsorted(cum, [lo, hi], side="right")
    return float(v_lo + (v_hi - v_lo) * (pos - lo))
