"""The pretraining corpus: read texts from a split folder, a dataset file or plain text, hold out a slice, describe it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nlpkit.data import dataset_suffix, read_text_file
from nlpkit.errors import DataError

DATASET_EXTS = {".jsonl", ".json", ".csv", ".tsv", ".parquet"}


@dataclass
class Corpus:
    """Training and held-out documents, plus where they came from."""

    train: list[str]
    heldout: list[str]
    source: str
    kind: str  # "split" | "dataset" | "text-file" | "text-folder"
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


def _read_dataset_texts(path: Path, options: dict) -> list[str]:
    from nlpkit.data import DatasetOptions, read_dataset

    # Pretraining needs texts only: an unlabelled corpus (no label column) is the usual case.
    options = {"labels_optional": True, **options}
    opts = DatasetOptions(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in options.items()})
    return list(read_dataset(path, opts).texts)


def _read_text_lines(path: Path, encoding: str) -> list[str]:
    text = read_text_file(path, encoding).replace("\r\n", "\n").replace("\r", "\n")  # as open() reads lines
    return [line.strip() for line in text.split("\n") if line.strip()]


def read_corpus(path: str | Path, *, heldout_docs: float = 0.05, seed: int = 0,
                dataset_options: dict | None = None) -> Corpus:
    """Read the documents to pretrain on.

    Parameters
    ----------
    path : a split folder (``split.json``: train + valid parts, never test), a dataset file
        (.jsonl/.json/.csv/.tsv/.parquet, or any file with ``format`` in ``dataset_options``),
        a ``.txt`` file (one document per line) or a folder of ``.txt`` files (one document each).
        Files may be gzip-compressed (``.jsonl.gz``, ``.txt.gz``; read by nlpkit.data's opener).
    heldout_docs : when there is no valid part, the share (< 1) or number of documents held out
        for evaluation and the fertility report (chosen with ``seed``).
    dataset_options : keyword arguments of ``nlpkit.data.DatasetOptions`` for dataset files.

    Returns
    -------
    Corpus
    """
    path = Path(path)
    options = dict(dataset_options or {})
    encoding = options.get("encoding", "utf-8")
    heldout: list[str] | None = None
    if not path.exists():
        raise DataError(f"corpus not found: {path}. Pass a split folder, a dataset file or a text file/folder.")
    if path.is_dir() and (path / "split.json").exists():
        from nlpkit.data import load_split

        split = load_split(path)  # the test part is never read into the corpus
        if split.train is None:
            raise DataError(f"{path}: the split has no train part; pretrain on a split with train (and valid) parts.")
        texts, kind = list(split.train.texts), "split"
        if split.valid is not None and len(split.valid):
            heldout = list(split.valid.texts)
    elif path.is_dir():
        files = sorted(p for pattern in ("*.txt", "*.txt.gz") for p in path.rglob(pattern) if p.is_file())
        if not files:
            raise DataError(f"{path}: a folder without split.json and without .txt files; pass a split folder, a dataset file or .txt files.")
        texts, kind = [], "text-folder"
        for p in files:
            t = read_text_file(p, encoding).strip()
            if t:
                texts.append(t)
    elif dataset_suffix(path) in DATASET_EXTS or options.get("format"):
        texts, kind = _read_dataset_texts(path, options), "dataset"
    else:
        texts, kind = _read_text_lines(path, encoding), "text-file"
    texts = [t for t in texts if t and t.strip()]
    if heldout is None:
        n = len(texts)
        n_held = int(round(heldout_docs * n)) if heldout_docs < 1 else int(heldout_docs)
        n_held = max(1, n_held)
        if n - n_held < 1:
            raise DataError(f"{path}: only {n} non-empty document(s); need at least 2 (one to train on, one held out).")
        order = np.random.default_rng(seed).permutation(n)
        held = set(order[:n_held].tolist())
        heldout = [texts[i] for i in sorted(held)]
        texts = [t for i, t in enumerate(texts) if i not in held]
        held_from = "carved"
    else:
        held_from = "valid"
    if not texts:
        raise DataError(f"{path}: no non-empty documents to train on.")
    return Corpus(train=texts, heldout=heldout, source=str(path), kind=kind, heldout_from=held_from)


def corpus_report(corpus: Corpus, train_lengths: np.ndarray, max_length: int) -> dict:
    """Documents, words, characters and the token-length distribution (after tokenisation)."""
    from nlpkit.text import count_words

    words = sum(count_words(t) for t in corpus.train)
    chars = sum(len(t) for t in corpus.train)
    lengths = np.asarray(train_lengths, dtype=np.int64)
    q = np.percentile(lengths, [50, 90, 99]) if len(lengths) else [0, 0, 0]
    return {
        "source": corpus.source,
        "kind": corpus.kind,
        "heldout_from": corpus.heldout_from,
        "documents": len(corpus.train),
        "heldout_documents": len(corpus.heldout),
        "words": int(words),
        "characters": int(chars),
        "tokens": int(lengths.sum()),
        "tokens_per_doc": {"mean": float(lengths.mean()) if len(lengths) else 0.0, "median": float(q[0]),
                           "p90": float(q[1]), "p99": float(q[2]), "max": int(lengths.max()) if len(lengths) else 0},
        "max_length": max_length,
        "docs_over_max_length": int((lengths > max_length - 2).sum()),  # [CLS] ... [SEP] must fit
        "fingerprint": corpus.fingerprint(),
    }

