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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

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
    distinct shingle sets are MinHashed (datasketch, fixed ``seed``) and indexed by LSH, and each
    candidate pair is kept only when the exact Jaccard of the two sets reaches ``threshold``.

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
    from datasketch import MinHash, MinHashLSH

    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    index: dict[frozenset, int] = {}
    group = np.empty(len(texts), dtype=np.int64)
    for i, text in enumerate(texts):
        s = shingles(text, shingle_words)
        group[i] = index.setdefault(s, len(index)) if s else -1
    sets = list(index)
    bands, rows = LSH_BANDS
    lsh = MinHashLSH(num_perm=num_perm, params=(bands, rows))
    hashes = MinHash.bulk(([x.encode("utf-8") for x in s] for s in sets), num_perm=num_perm, seed=seed)
    with lsh.insertion_session() as session:
        for g, m in enumerate(hashes):
            session.insert(g, m, check_duplication=False)
    found: dict[tuple[int, int], float] = {}
    for a, m in enumerate(hashes):
        for b in lsh.query(m):
            if b <= a:
                continue
            sa, sb = sets[a], sets[b]
            inter = len(sa & sb)
            jac = inter / (len(sa) + len(sb) - inter)
            if jac >= threshold:
                found[(a, b)] = jac
    keys = sorted(found)
    settings = {"method": METHOD, "shingle_words": shingle_words, "threshold": threshold,
                "num_perm": num_perm, "seed": seed, "lsh_bands": bands, "lsh_rows": rows}
    return NearDuplicates(group=group, pairs=np.array(keys, dtype=np.int64).reshape(-1, 2),
                          jaccard=np.array([found[k] for k in keys], dtype=np.float64), settings=settings)


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
