"""Text encoding and batching for encoder models, the same for training and prediction.

Documents become token-id sequences of at most ``max_length`` tokens (truncated, cut to head+tail,
or split into overlapping chunks, :func:`encode_texts`); batches group documents of similar length
so dynamic padding wastes little (:func:`length_grouped_batches` for training, :func:`sorted_batches`
for prediction); :func:`collate` pads one batch and :func:`pool_logits` turns per-chunk logits into
per-document logits. torch is imported inside functions, so importing this module is cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from nlpkit.errors import ConfigError
from nlpkit.hf.checkpoint import quiet_transformers

LONG_TEXT_MODES = ("truncate", "head-tail", "chunks")
POOLS = ("mean", "max")


# --- encoding long documents -----------------------------------------------------------------

@dataclass
class Encoded:
    """Token ids of a list of documents; a document may span several sequences (chunks).

    ``seqs[i]`` is a full model input (special tokens included); the sequences of document ``d``
    are ``seqs[starts[d]:starts[d + 1]]`` (contiguous).
    """

    seqs: list[list[int]]
    starts: np.ndarray  # (n_docs + 1,) int64 offsets into seqs

    @property
    def n_docs(self) -> int:
        return len(self.starts) - 1

    def doc_seqs(self, d: int) -> list[list[int]]:
        return self.seqs[self.starts[d]:self.starts[d + 1]]

    def doc_lengths(self) -> np.ndarray:
        """Total tokens of each document (what a batch of it costs)."""
        lens = np.fromiter((len(s) for s in self.seqs), dtype=np.int64, count=len(self.seqs))
        return np.add.reduceat(lens, self.starts[:-1]) if len(lens) else np.zeros(0, dtype=np.int64)


def special_template(tokenizer) -> tuple[list[int], list[int]]:
    """The special tokens a tokenizer puts before and after one text, e.g. ([CLS], [SEP]).

    transformers 5 dropped ``build_inputs_with_special_tokens``; we read the template off one
    encoded word instead, which works for BERT, RoBERTa, DistilBERT and ModernBERT alike.
    """
    with_special = tokenizer("hello", add_special_tokens=True)["input_ids"]
    plain = tokenizer("hello", add_special_tokens=False)["input_ids"]
    n = len(plain)
    for i in range(len(with_special) - n + 1):
        if with_special[i:i + n] == plain:
            return list(with_special[:i]), list(with_special[i + n:])
    return [], []


def head_tail(ids: Sequence[int], budget: int) -> list[int]:
    """First quarter and last three quarters of the budget (Sun et al. 2019, "How to fine-tune
    BERT for text classification?": head 128 + tail 382 of 510 tokens did best on IMDb)."""
    ids = list(ids)
    if len(ids) <= budget:
        return ids
    head = budget // 4
    tail = budget - head
    return ids[:head] + (ids[-tail:] if tail > 0 else [])


def chunk_windows(n_tokens: int, window: int, overlap: int, max_chunks: int) -> list[tuple[int, int]]:
    """(start, end) of overlapping windows covering ``n_tokens`` tokens; at most ``max_chunks``.

    Consecutive windows share ``overlap`` tokens; the last window ends at the document's end.
    A document longer than ``max_chunks`` windows keeps its first ``max_chunks`` windows.
    """
    if n_tokens <= window:
        return [(0, n_tokens)]
    step = window - overlap
    starts = list(range(0, n_tokens - window, step)) + [n_tokens - window]
    return [(s, s + window) for s in starts[:max_chunks]]


def encode_texts(tokenizer, texts: Sequence[str], *, max_length: int, long_text: str = "truncate",
                 overlap: int = 0, max_chunks: int = 8) -> Encoded:
    """Tokenize ``texts`` into model inputs of at most ``max_length`` tokens each.

    ``long_text``: ``truncate`` (keep the start), ``head-tail`` (keep start and end) or
    ``chunks`` (overlapping windows of one document, pooled later). Identical for training and
    prediction, so a model sees documents the same way in both.
    """
    prefix, suffix = special_template(tokenizer)
    budget = max_length - len(prefix) - len(suffix)
    if budget < 1:
        raise ConfigError(f"--max-length {max_length} leaves no room for text after the special tokens; use at least {len(prefix) + len(suffix) + 1}.")
    texts = [t if isinstance(t, str) else "" for t in texts]
    with quiet_transformers():
        if long_text == "truncate":
            raw = tokenizer(texts, add_special_tokens=False, truncation=True, max_length=budget)["input_ids"] if texts else []
        else:
            raw = tokenizer(texts, add_special_tokens=False, truncation=False)["input_ids"] if texts else []
    seqs: list[list[int]] = []
    starts = [0]
    for ids in raw:
        if long_text == "chunks":
            for a, b in chunk_windows(len(ids), budget, overlap, max_chunks):
                seqs.append(prefix + list(ids[a:b]) + suffix)
        elif long_text == "head-tail":
            seqs.append(prefix + head_tail(ids, budget) + suffix)
        else:
            seqs.append(prefix + list(ids[:budget]) + suffix)
        starts.append(len(seqs))
    return Encoded(seqs=seqs, starts=np.asarray(starts, dtype=np.int64))


# --- batching --------------------------------------------------------------------------------

def length_grouped_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                           mega: int = 50) -> list[np.ndarray]:
    """Shuffled batches of similar-length documents, so dynamic padding wastes little.

    Shuffle, cut into mega-batches of ``mega * batch_size``, sort each by length (longest first),
    cut into batches, then shuffle the batch order (the HF ``LengthGroupedSampler`` idea).
    """
    order = rng.permutation(len(lengths))
    batches: list[np.ndarray] = []
    span = max(batch_size * mega, batch_size)
    for i in range(0, len(order), span):
        mb = order[i:i + span]
        mb = mb[np.argsort(-lengths[mb], kind="stable")]
        batches.extend(mb[j:j + batch_size] for j in range(0, len(mb), batch_size))
    perm = rng.permutation(len(batches))
    return [batches[k] for k in perm]


def sorted_batches(lengths: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Batches in decreasing length order (prediction: least padding, no randomness)."""
    order = np.argsort(-lengths, kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def collate(enc: Encoded, docs: Sequence[int], pad_id: int):
    """Pad the sequences of ``docs`` to the longest one; returns (input_ids, attention_mask, seq_doc)."""
    import torch

    seqs: list[list[int]] = []
    seq_doc: list[int] = []
    for k, d in enumerate(docs):
        for s in enc.doc_seqs(int(d)):
            seqs.append(s)
            seq_doc.append(k)
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.as_tensor(s, dtype=torch.long)
        mask[i, : len(s)] = 1
    return ids, mask, torch.as_tensor(seq_doc, dtype=torch.long)


def pool_logits(logits, seq_doc, n_docs: int, pool: str):
    """Per-document logits from per-chunk logits (mean or max); identity with one chunk each."""
    import torch

    if logits.shape[0] == n_docs:
        return logits
    if pool == "max":
        out = torch.full((n_docs, logits.shape[1]), float("-inf"), dtype=logits.dtype, device=logits.device)
        index = seq_doc.to(logits.device)[:, None].expand_as(logits)
        return out.scatter_reduce(0, index, logits, reduce="amax", include_self=True)
    summed = torch.zeros((n_docs, logits.shape[1]), dtype=logits.dtype, device=logits.device)
    summed = summed.index_add(0, seq_doc.to(logits.device), logits)
    counts = torch.bincount(seq_doc, minlength=n_docs).to(logits.device, logits.dtype)
    return summed / counts[:, None]
