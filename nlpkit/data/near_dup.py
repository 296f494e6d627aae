"""Near-duplicate texts within and across the parts of a dataset: MinHash + LSH over word shingles,
every candidate pair verified by the exact Jaccard similarity of its shingle sets.

Reposted news and templated tickets put nearly the same text into train and test, and test scores
on such documents measure memory (Lee et al. 2022, "Deduplicating Training Data Makes Language
Models Better", section 4: MinHash over word n-grams, Jaccard >= 0.8). :func:`near_duplicates`
finds them; `nlpkit split` records its summary in ``split.json``, `nlpkit inspect` shows it, and
the report scores runs without the test documents it names (docs/statistics.md says why these
settings).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import chain

import numpy as np
import scipy.sparse as sp

from nlpkit.text import tokenize

SHINGLE_WORDS = 3
THRESHOLD = 0.8
NUM_PERM = 128
SEED = 1  # the MinHash permutations' seed: the same texts always give the same pairs
# LSH banding (bands, rows per band): a pair with Jaccard s becomes a candidate with probability
# 1 - (1 - s**6)**21, 0.998 at s = 0.8 and 0.015 at s = 0.3; candidates are then verified exactly.
LSH_BANDS = (21, 6)
MAX_IDS = 1000  # test ids listed in a record; the total is always given
METHOD = "minhash-lsh"


def shingles(text: str, size: int = SHINGLE_WORDS) -> frozenset[str]:
    """Word ``size``-grams of ``text`` after normalisation (lower case, punctuation dropped,
    whitespace collapsed: :func:`nlpkit.text.tokenize`).

    A text with fewer than ``size`` words has one shingle, the whole normalised text, so it is
    a near-duplicate only of texts that are equal to it once normalised (Jaccard 1). A text with
    no word at all has no shingle and is never a near-duplicate.
    """
    words = tokenize(text)
    if len(words) < size:
        return frozenset([" ".join(words)]) if words else frozenset()
    return frozenset(" ".join(words[i : i + size]) for i in range(len(words) - size + 1))


@dataclass
class NearDuplicates:
    """Near-duplicate pairs of a list of texts, stored compactly.

    ``group[i]`` is the index of text i's normalised shingle set among the distinct ones (-1 for a
    text with no word); texts in one group are exact duplicates once normalised. ``pairs`` are the
    pairs of distinct groups (a < b) whose Jaccard similarity is at least the threshold, with that
    similarity in ``jaccard``. Every two texts of one group, or of two paired groups, are a
    near-duplicate pair.
    """

    group: np.ndarray
    pairs: np.ndarray  # (m, 2) int64
    jaccard: np.ndarray  # (m,) float64
    settings: dict = field(default_factory=dict)

    def neighbours(self) -> list[list[int]]:
        """The groups paired with each group."""
        n_groups = int(self.group.max(initial=-1)) + 1
        out: list[list[int]] = [[] for _ in range(n_groups)]
        for a, b in self.pairs.tolist():
            out[a].append(b)
            out[b].append(a)
        return out


def near_duplicates(texts: Sequence[str], *, threshold: float = THRESHOLD, shingle_words: int = SHINGLE_WORDS,
                    num_perm: int = NUM_PERM, seed: int = SEED) -> NearDuplicates:
    """Every pair of texts whose word-shingle sets have Jaccard similarity >= ``threshold``.

    Texts that are equal once normalised are grouped first (exact duplicates cost nothing); the
    distinct shingle sets are MinHashed (fixed ``seed``) and banded by LSH, and each candidate pair
    is kept only when the exact Jaccard of the two sets reaches ``threshold``.

    Parameters
    ----------
    texts
        The documents (of every part to compare, concatenated).
    threshold
        Minimum Jaccard similarity of the shingle sets, in (0, 1].
    shingle_words
        Words per shingle; shorter texts match only exactly (see :func:`shingles`).
    num_perm, seed
        MinHash permutations and their seed.

    Returns
    -------
    NearDuplicates
    """
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    bands, rows = LSH_BANDS
    if num_perm < bands * rows:
        raise ValueError(f"num_perm must be at least {bands * rows} ({bands} LSH bands of {rows}), got {num_perm}")
    index: dict[frozenset, int] = {}
    group = np.empty(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        s = shingles(text, shingle_words)
        group[i] = index.setdefault(s, len(index)) if s else -1
    sets = _ShingleSets.of(list(index))
    signatures = _minhash(sets, num_perm, seed)[:, : bands * rows]
    a, b = _lsh_candidates(signatures, bands, rows)
    jaccard = sets.jaccard(a, b)
    keep = jaccard >= threshold
    settings = {"method": METHOD, "shingle_words": shingle_words, "threshold": threshold,
                "num_perm": num_perm, "seed": seed, "lsh_bands": bands, "lsh_rows": rows}
    return NearDuplicates(group=group, pairs=np.stack([a[keep], b[keep]], axis=1), jaccard=jaccard[keep],
                          settings=settings)


@dataclass
class _ShingleSets:
    """The distinct shingle sets in CSR form: set g holds shingle ids ``ids[starts[g]:starts[g + 1]]``
    (each once); ``hashes[k]`` is the 32-bit hash of shingle k, computed once per distinct shingle."""

    starts: np.ndarray  # (sets + 1,) int64
    ids: np.ndarray  # (total shingles,) int64
    hashes: np.ndarray  # (distinct shingles,) uint32

    @classmethod
    def of(cls, sets: Sequence[frozenset[str]]) -> _ShingleSets:
        vocab: dict[str, int] = {}
        ids = np.array([vocab.setdefault(x, len(vocab)) for x in chain.from_iterable(sets)], dtype=np.int64)
        sizes = np.fromiter(map(len, sets), dtype=np.int64, count=len(sets))
        # CRC-32: stable across processes (hash() changes with PYTHONHASHSEED) and a quarter of the
        # cost of datasketch's SHA-1 here; _minhash's MurmurHash3 finalizer mixes its linear bits.
        hashes = np.fromiter(map(zlib.crc32, map(str.encode, vocab)), dtype=np.uint32, count=len(vocab))
        return cls(starts=np.concatenate([[0], np.cumsum(sizes)]), ids=ids, hashes=hashes)

    def __len__(self) -> int:
        return len(self.starts) - 1

    def jaccard(self, a: np.ndarray, b: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
        """Exact Jaccard similarity of sets ``a[i]`` and ``b[i]``."""
        x = sp.csr_matrix((np.ones(len(self.ids), dtype=np.int32), self.ids, self.starts),
                          shape=(len(self), len(self.hashes)))
        x.sort_indices()
        sizes = np.diff(self.starts)
        inter = np.concatenate([np.zeros(0, dtype=np.int64)]
                               + [np.asarray(x[a[i:i + chunk]].multiply(x[b[i:i + chunk]]).sum(axis=1)).ravel()
                                  for i in range(0, len(a), chunk)])
        return inter / (sizes[a] + sizes[b] - inter)


# MurmurHash3's 32-bit finalizer (shift, multiplier): datasketch >= 2.0 mixes every hash with it
# once before the permutations (its "affine32" scheme, https://github.com/ekzhu/datasketch/issues/212).
_FMIX32 = ((16, 0x85EBCA6B), (13, 0xC2B2AE35), (16, None))


def _minhash(sets: _ShingleSets, num_perm: int, seed: int) -> np.ndarray:
    """(sets, num_perm) uint32 MinHash signatures, equal to datasketch 2's ``MinHash(num_perm, seed,
    hashfunc=zlib.crc32)`` (its default "affine32" scheme): permutation k is h -> a_k*h + b_k mod 2**32
    with a_k odd, a bijection, so it adds no collisions (the older "mod 2**61 - 1, then 32 bits" fold
    does: issue 212).

    One permutation at a time over the distinct shingles, then each set's minimum over its shingles
    (``np.minimum.reduceat`` in CSR order): extra memory is one value per shingle occurrence, and
    1-d reduceat is several times faster than the same reduction over a 2-d block."""
    rng = np.random.RandomState(seed)  # datasketch's draws, in its order: all of a, then all of b
    a = rng.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = rng.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    h = sets.hashes.copy()
    for shift, mult in _FMIX32:
        h ^= h >> np.uint32(shift)
        if mult is not None:
            h *= np.uint32(mult)  # uint32 arithmetic wraps modulo 2**32, as intended
    out = np.empty((len(sets), num_perm), dtype=np.uint32)
    if len(sets):
        permuted = np.empty_like(h)
        for k in range(num_perm):
            np.multiply(h, a[k], out=permuted)
            permuted += b[k]
            out[:, k] = np.minimum.reduceat(permuted[sets.ids], sets.starts[:-1])
    return out


_DEDUP_EVERY = 1 << 22  # candidate pairs collected before duplicates across bands are dropped


def _lsh_candidates(signatures: np.ndarray, bands: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Candidate pairs (a < b, sorted): every two sets whose signatures agree on all ``rows`` values of
    at least one band. Nothing is capped: a bucket of k sets gives its k(k-1)/2 pairs, as many as an
    LSH index's queries return for it.

    A band's ``rows`` values are folded into one 64-bit key: equal bands always share a key, so no
    pair is lost, and two different bands that collide only add a candidate that verification drops."""
    n = len(signatures)
    found = [np.zeros(0, dtype=np.int64)]  # a * n + b
    if n < 2:
        return found[0], found[0]
    mult = np.random.RandomState(0).randint(0, 1 << 63, rows, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    for band in range(bands):
        values = signatures[:, band * rows:(band + 1) * rows].astype(np.uint64)
        key = np.zeros(n, dtype=np.uint64)
        for r in range(rows):
            key ^= key >> np.uint64(29)
            key += values[:, r] * mult[r]
        order = np.argsort(key)
        key = key[order]
        starts = np.flatnonzero(np.concatenate([[True], key[1:] != key[:-1]]))
        ends = np.append(starts[1:], n)
        # position p of the sorted order pairs with positions p+1 .. (end of its bucket) - 1
        after = np.repeat(ends, ends - starts) - np.arange(n) - 1
        total = int(after.sum())
        if not total:
            continue
        left = np.repeat(np.arange(n), after)
        right = left + 1 + np.arange(total) - np.repeat(np.cumsum(after) - after, after)
        x, y = order[left], order[right]
        found.append(np.minimum(x, y) * n + np.maximum(x, y))
        if sum(map(len, found)) > _DEDUP_EVERY:  # bounds memory where most pairs recur in many bands
            found = [np.unique(np.concatenate(found))]
    codes = np.unique(np.concatenate(found))
    return codes // n, codes % n


def _part_counts(found: NearDuplicates, part_of: np.ndarray, n_parts: int) -> np.ndarray:
    """(groups, parts) documents per group and part."""
    n_groups = int(found.group.max(initial=-1)) + 1
    counts = np.zeros((n_groups, n_parts), dtype=np.int64)
    keep = found.group >= 0
    np.add.at(counts, (found.group[keep], part_of[keep]), 1)
    return counts


def near_duplicate_record(parts: Mapping[str, Sequence[str]], ids: Mapping[str, Sequence[str]] | None = None, *,
                          test: str = "test", max_ids: int = MAX_IDS, found: NearDuplicates | None = None,
                          **options) -> dict:
    """Near-duplicate counts within each part and across each pair of parts (JSON-ready): what
    ``split.json`` records and `nlpkit inspect` shows.

    Parameters
    ----------
    parts
        Part name -> texts, in the order to report them (e.g. train, valid, test).
    ids
        Part name -> document ids; needed for the test ids with a near-duplicate in another part.
    test
        The part whose documents are scored; when it is in ``parts`` (with others), the record lists
        its ids that have a near-duplicate in any other part (at most ``max_ids``, with the total).
    found
        :func:`near_duplicates` of the concatenated texts, when the caller already has it.
    options
        Passed to :func:`near_duplicates`.

    Returns
    -------
    dict
        ``settings``; ``within``: per part, ``pairs`` and ``docs`` (documents with a near-duplicate in
        their own part); ``across``: per pair of parts, ``pairs`` and ``docs`` per part (documents with
        a near-duplicate in the other part); ``test_with_near_duplicates`` (or None): ``total``,
        ``in`` (per other part), ``ids``, ``ids_complete``.
    """
    names = list(parts)
    texts = [t for name in names for t in parts[name]]
    part_of = np.repeat(np.arange(len(names)), [len(parts[name]) for name in names])
    found = found if found is not None else near_duplicates(texts, **options)
    counts = _part_counts(found, part_of, len(names))
    a, b = found.pairs[:, 0], found.pairs[:, 1]
    # pairs inside one group (equal once normalised) plus every pair across two paired groups
    within_pairs = (counts * (counts - 1) // 2).sum(axis=0) + (counts[a] * counts[b]).sum(axis=0)
    # linked[g, p]: group g has a near-duplicate (another document) in part p
    linked = np.zeros(counts.shape, dtype=np.int64)
    if len(a):
        np.add.at(linked, a, counts[b])
        np.add.at(linked, b, counts[a])
    within = {}
    for p, name in enumerate(names):
        has = (counts[:, p] > 1) | (linked[:, p] > 0)
        within[name] = {"pairs": int(within_pairs[p]), "docs": int(counts[has, p].sum())}
    across = []
    for p in range(len(names)):
        for q in range(p + 1, len(names)):
            pairs = int((counts[:, p] * counts[:, q]).sum() + (counts[a, p] * counts[b, q]).sum()
                        + (counts[a, q] * counts[b, p]).sum())
            in_q = (counts[:, q] > 0) | (linked[:, q] > 0)  # group has a document in q, or a partner that has
            in_p = (counts[:, p] > 0) | (linked[:, p] > 0)
            across.append({"parts": [names[p], names[q]], "pairs": pairs,
                           "docs": {names[p]: int(counts[in_q, p].sum()), names[q]: int(counts[in_p, q].sum())}})
    record = {"settings": found.settings, "within": within, "across": across, "test_with_near_duplicates": None}
    if test in parts and len(names) > 1:
        t = names.index(test)
        others = [p for p in range(len(names)) if p != t]
        reach = counts + linked  # documents of each part that are near-duplicates of the group
        hit = reach[:, others] > 0
        rows = np.flatnonzero(part_of == t)
        g = found.group[rows]
        flagged = (g >= 0) & hit[np.maximum(g, 0)].any(axis=1)
        per_part = {names[o]: int(((g >= 0) & hit[np.maximum(g, 0), k]).sum()) for k, o in enumerate(others)}
        test_ids = list(ids[test]) if ids is not None else []
        listed = [test_ids[i] for i in np.flatnonzero(flagged)[:max_ids]] if test_ids else []
        total = int(flagged.sum())
        record["test_with_near_duplicates"] = {"total": total, "in": per_part, "ids": listed,
                                               "ids_complete": bool(test_ids) and len(listed) == total}
    return record


def test_ids_with_near_duplicates(parts: Mapping[str, Sequence[str]], ids: Mapping[str, Sequence[str]], *,
                                  test: str = "test", **options) -> list[str]:
    """Every id of part ``test`` with a near-duplicate in another part (no cap)."""
    record = near_duplicate_record(parts, ids, test=test, max_ids=len(ids[test]), **options)
    entry = record["test_with_near_duplicates"]
    return entry["ids"] if entry else []


def near_duplicate_examples(texts: Sequence[str], ids: Sequence[str], found: NearDuplicates, n: int = 3) -> list[dict]:
    """Up to ``n`` pairs of distinct normalised texts from ``found``, the least similar first (the
    ones a reader should judge): ``jaccard``, ``ids`` and ``texts`` of one document of each group."""
    first = {}
    for i, g in enumerate(found.group.tolist()):
        first.setdefault(g, i)
    order = np.argsort(found.jaccard, kind="stable")[:n]
    return [{"jaccard": round(float(found.jaccard[k]), 3),
             "ids": [ids[first[int(found.pairs[k, 0])]], ids[first[int(found.pairs[k, 1])]]],
             "texts": [texts[first[int(found.pairs[k, 0])]], texts[first[int(found.pairs[k, 1])]]]}
            for k in order]
