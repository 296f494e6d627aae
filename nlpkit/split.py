"""Iterative stratification of multi-label data: pure, seeded functions on a label matrix.

Everything here works on a 0/1 label matrix ``y`` (dense array or scipy sparse, rows = documents,
columns = labels) and returns a *part index per row*; reading and writing datasets is
``nlpkit.data``'s job. The main entry points:

``iterative_split(y, sizes, order=1, seed=0)``
    Sechidis, Tsoumakas & Vlahavas (2011) iterative stratification, with the corrections listed in
    its docstring; ``order=2`` also balances label pairs (Szymanski & Kajdanowicz 2017).
``kfold(y, k, ...)``, ``carve(y, size, ...)``
    k equal folds; one stratified part carved out of a matrix (e.g. a valid part out of train).
``random_split``, ``skmultilearn_split``
    The baselines: a seeded permutation, and scikit-multilearn 0.2.0's reference implementation.
``split_quality(y, assignment, n_parts)``
    LD, LPD, ED, FZ, FLZ, FZLC, rLD, DCP (definitions in its docstring).

Sizes are given as fractions (``0 < x < 1``, of all rows) or counts (integers >= 1); they are
turned into exact per-part counts by ``resolve_sizes`` and every method returns parts of exactly
those sizes (scikit-multilearn only approximately: it does not enforce them).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import Union

import numpy as np
import scipy.sparse as sp

from nlpkit.errors import ConfigError, DataError

__all__ = [
    "resolve_sizes",
    "iterative_split",
    "kfold",
    "carve",
    "random_split",
    "skmultilearn_split",
    "split_quality",
    "label_pairs",
    "rare_labels",
]

Size = Union[int, float]


# --- inputs --------------------------------------------------------------------------------


def _as_csr(y) -> sp.csr_matrix:
    """A binary CSR copy of ``y`` with sorted column indices; a 1-D ``y`` is a class vector."""
    if sp.issparse(y):
        m = sp.csr_matrix(y, copy=True)
    else:
        arr = np.asarray(y)
        if arr.ndim == 1:
            # single-label classes (any sortable values) -> one-hot columns in sorted class order
            if arr.size == 0:
                return sp.csr_matrix((0, 0), dtype=np.int8)
            _, codes = np.unique(arr, return_inverse=True)
            codes = codes.ravel()
            return sp.csr_matrix(
                (np.ones(arr.size, np.int8), (np.arange(arr.size), codes)),
                shape=(arr.size, int(codes.max()) + 1),
            )
        if arr.ndim != 2:
            raise DataError(f"label matrix has {arr.ndim} dimensions; expected (documents, labels).")
        m = sp.csr_matrix(arr != 0)
    m.sum_duplicates()
    m.eliminate_zeros()
    m.data = np.ones(m.nnz, np.int8)
    m.sort_indices()
    return m


def resolve_sizes(sizes: Sequence[Size], n: int) -> np.ndarray:
    """Turn requested part sizes into exact document counts.

    Parameters
    ----------
    sizes : sequence of float or int
        One entry per part: a fraction of ``n`` (a float with ``0 < x < 1``) or a count (an
        integer ``>= 1``). They may add up to less than ``n``: the rest is then left out (part
        ``-1`` in the assignment).
    n : int
        Number of documents.

    Returns
    -------
    np.ndarray of int64, one count per part. Fractions are rounded by largest remainder
    (Hamilton), so fractions adding up to 1 give counts adding up to exactly ``n``.
    """
    if n < 1:
        raise DataError("no documents to split.")
    if len(sizes) == 0:
        raise ConfigError("no part sizes given; ask for at least one part.")
    counts = np.zeros(len(sizes), np.int64)
    exact = np.zeros(len(sizes))
    is_fraction = np.zeros(len(sizes), bool)
    for i, s in enumerate(sizes):
        if isinstance(s, (bool, np.bool_)):
            raise ConfigError(f"part size {s!r} is not a number; give a fraction (0 < x < 1) or a count (>= 1).")
        if isinstance(s, (int, np.integer)):
            if s < 1:
                raise ConfigError(f"part size {s} is not a count >= 1; give a fraction (0 < x < 1) or a count (>= 1).")
            counts[i] = int(s)
        else:
            f = float(s)
            if not 0.0 < f < 1.0:
                raise ConfigError(f"part size {s} is not a fraction in (0, 1) or an integer count >= 1.")
            is_fraction[i] = True
            exact[i] = f * n
    n_counted = int(counts.sum())
    if n_counted > n:
        raise ConfigError(f"part sizes ask for {n_counted} documents but there are only {n}; use smaller sizes.")
    if is_fraction.any():
        frac_total = float(exact[is_fraction].sum()) / n
        if frac_total > 1.0 + 1e-9:
            raise ConfigError(f"fractional part sizes add up to {frac_total:g} > 1; use smaller sizes.")
        # Hamilton rounding over the fractional parts plus the implicit rest (everything not
        # requested), so that fractions adding up to 1 give exactly n documents.
        rest = max(n - n_counted - float(exact[is_fraction].sum()), 0.0)
        idx = np.flatnonzero(is_fraction)
        want = np.append(exact[idx], rest)
        base = np.floor(want + 1e-9).astype(np.int64)
        short = (n - n_counted) - int(base.sum())
        if short > 0:
            # stable: larger remainder first, then earlier part
            order = np.argsort(-(want - base), kind="stable")[:short]
            base[order] += 1
        counts[idx] = base[:-1]
    if int(counts.sum()) > n:
        raise ConfigError(f"part sizes ask for {int(counts.sum())} of {n} documents; use smaller sizes.")
    empty = np.flatnonzero(counts < 1)
    if empty.size:
        raise ConfigError(
            f"part {int(empty[0])} would get no document ({n} documents in all); use a larger size or a count >= 1."
        )
    return counts


# --- sparse helpers ------------------------------------------------------------------------


def _lexsort(keys: Sequence[np.ndarray]) -> np.ndarray:
    """``np.lexsort(keys)`` (last key primary) by chained stable argsorts, much faster on large
    arrays than np.lexsort."""
    order = np.argsort(keys[0], kind="stable")
    for key in keys[1:]:
        order = order[np.argsort(key[order], kind="stable")]
    return order


def _gather_rows(indptr: np.ndarray, indices: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column indices of the given CSR rows, and for each one its position in ``rows``."""
    starts = indptr[rows]
    lens = indptr[rows + 1] - starts
    total = int(lens.sum())
    owner = np.repeat(np.arange(rows.size), lens)
    offs = np.arange(total) - np.repeat(np.cumsum(lens) - lens, lens)
    return indices[np.repeat(starts, lens) + offs], owner


def label_pairs(y) -> tuple[sp.csr_matrix, np.ndarray]:
    """The label-pair indicator matrix of ``y``: one column per co-occurring pair ``a < b``.

    Returns
    -------
    z : csr_matrix (n_docs, n_pairs), 0/1
    pairs : int64 array (n_pairs, 2), the labels of each column, in lexicographic order.
    """
    y = _as_csr(y)
    n, L = y.shape
    indptr, indices = y.indptr.astype(np.int64), y.indices.astype(np.int64)
    row_len = np.diff(indptr)
    row_of = np.repeat(np.arange(n), row_len)
    # for entry p of a row ending at e, pair it with the entries p+1 .. e-1 of the same row
    later = indptr[row_of + 1] - np.arange(indptr[-1]) - 1
    first = np.repeat(np.arange(indptr[-1]), later)
    offs = np.arange(int(later.sum())) - np.repeat(np.cumsum(later) - later, later)
    second = first + 1 + offs
    keys = indices[first] * L + indices[second]
    uniq, col = np.unique(keys, return_inverse=True)
    rows = row_of[first]
    z = sp.csr_matrix((np.ones(keys.size, np.int8), (rows, col.ravel())), shape=(n, uniq.size))
    z.sort_indices()
    return z, np.stack([uniq // L, uniq % L], axis=1) if uniq.size else np.zeros((0, 2), np.int64)


def rare_labels(y, n_parts: int) -> np.ndarray:
    """Indices of labels that have at least one but fewer than ``n_parts`` documents.

    These cannot appear in every part; the CLI lists them in a warning.
    """
    counts = np.asarray(_as_csr(y).sum(axis=0)).ravel()
    return np.flatnonzero((counts > 0) & (counts < n_parts))


# --- the algorithm -------------------------------------------------------------------------


# Weight of a pair's two labels in the order-2 key (see _State.apportion): with 0 the pairs'
# batches ignore their labels and LD gets worse than a random split's; 0.5 keeps LD close to
# order 1 while still lowering LPD (measured in bench/split_bench.py).
PAIR_LABEL_WEIGHT = 0.5
# Batches up to this many documents are placed one by one in plain Python (cheaper than the
# vectorised path's fixed cost; the result is the same greedy).
_SMALL_BATCH = 8
_MIN_PAIR = 2  # order 2 stratifies pairs seen at least this often; a pair in one document cannot be spread


class _State:
    """Mutable bookkeeping of one stratification run (columns = the strata being balanced)."""

    def __init__(self, r: sp.csr_matrix, parents: np.ndarray, quotas: np.ndarray, rng: np.random.Generator):
        self.rng = rng
        self.n, self.m = r.shape
        self.p = quotas.size
        self.parents = parents  # (n_strata, 2): the labels of each stratum; (l, l) for label l
        self.r_indptr = r.indptr.astype(np.int64)
        self.r_indices = r.indices.astype(np.int64)
        c = r.tocsc()
        c.sort_indices()
        self.c_indptr = c.indptr.astype(np.int64)
        self.c_indices = c.indices.astype(np.int64)
        self.quota = quotas.astype(np.float64)
        self.left = quotas.astype(np.int64).copy()  # documents each part still accepts
        self.part = np.full(self.n, -1, np.int64)
        self.count = np.zeros((self.m, self.p), np.int64)  # assigned documents per (stratum, part)
        self.remaining = np.diff(self.c_indptr)  # unassigned documents per stratum
        self.total = self.remaining.copy()  # documents per stratum

    def unassigned(self, col: int) -> np.ndarray:
        """Unassigned documents of stratum ``col``, in the run's random document order."""
        docs = self.c_indices[self.c_indptr[col] : self.c_indptr[col + 1]]
        return docs[self.part[docs] < 0]  # CSC indices are sorted, and row order is random

    def assign(self, docs: np.ndarray, parts: np.ndarray) -> np.ndarray:
        """Put ``docs`` into ``parts``; returns the strata whose remaining count changed."""
        self.part[docs] = parts
        if docs.size <= _SMALL_BATCH:
            touched = []
            for d, j in zip(docs.tolist(), parts.tolist()):
                self.left[j] -= 1
                cols = self.r_indices[self.r_indptr[d] : self.r_indptr[d + 1]]
                self.count[cols, j] += 1
                self.remaining[cols] -= 1
                touched.append(cols)
            return touched[0] if len(touched) == 1 else np.concatenate(touched)
        self.left -= np.bincount(parts, minlength=self.p)
        cols, owner = _gather_rows(self.r_indptr, self.r_indices, docs)
        np.add.at(self.count.reshape(-1), cols * self.p + parts[owner], 1)
        np.subtract.at(self.remaining, cols, 1)
        return cols

    def apportion(self, col: int, k: int) -> np.ndarray:
        """Parts for ``k`` documents of stratum ``col``, in order (the greedy of Sechidis et al.
        2011, Alg. 1, one document at a time, computed in one go).

        Each document goes to the open part with the largest *relative* remaining demand, i.e.
        the smallest ``assigned / quota`` (the paper compares remaining desired counts, so at
        0.8/0.2 a label with two documents never reaches the 0.2 part -- iterstrat issue #6).
        For a pair stratum ``(a, b)`` the key adds ``PAIR_LABEL_WEIGHT`` times the same share for
        labels ``a`` and ``b``, so that pair batches also keep their labels balanced. Ties go to
        the part with the most free places (Sechidis), then to a random part. The key of slot
        ``t`` of part ``j`` (its ``t``-th document from this batch) is
        ``(c_j + t + w (c_aj + c_bj + 2t)) / quota_j``; the greedy takes the ``k`` smallest.
        """
        a, b = self.parents[col]
        w = PAIR_LABEL_WEIGHT
        tie = self.rng.random(self.p)
        if k <= _SMALL_BATCH:
            cc, ca, cb = self.count[col].tolist(), self.count[a].tolist(), self.count[b].tolist()
            left, quota = self.left.tolist(), self.quota.tolist()
            out = []
            for _ in range(k):
                best, best_key = -1, None
                for j in range(self.p):
                    if left[j] > 0:
                        key = ((cc[j] + w * (ca[j] + cb[j])) / quota[j], -left[j], tie[j])
                        if best_key is None or key < best_key:
                            best, best_key = j, key
                out.append(best)
                cc[best] += 1
                if a != col:
                    ca[best] += 1
                    cb[best] += 1
                left[best] -= 1
            return np.array(out, np.int64)
        slots = np.minimum(self.left, k)
        j = np.repeat(np.arange(self.p), slots)
        t = np.arange(j.size) - np.repeat(np.cumsum(slots) - slots, slots)
        if a == col:
            key1 = (self.count[col, j] + t) * (1 + 2 * w) / self.quota[j]
        else:
            key1 = (self.count[col, j] + t + w * (self.count[a, j] + self.count[b, j] + 2 * t)) / self.quota[j]
        take = _lexsort((tie[j], -(self.left[j] - t), key1))[:k]
        return np.sort(j[take], kind="stable")


def _repair_presence(st: _State, n_labels: int, col_rank: np.ndarray) -> int:
    """Make every label with at least as many documents as parts present in every part.

    The main pass (relative demand) leaves few such holes, but it can: rarer labels' batches may
    already have put all of a label's documents into some parts. Each hole (label ``l`` missing
    from part ``j``), rarest label first, is filled by a swap that keeps every part's size: a
    document with ``l`` moves to ``j`` from a part holding at least two of ``l``, and a document
    of ``j`` (preferably without labels, else with the fewest) moves back; neither move may open
    a new hole. Returns the number of swaps. (Seeding every part with every label up front, as
    tried first, also guarantees presence but made LD clearly worse on Reuters-21578.)
    """
    p = st.p
    totals = st.count[:n_labels].sum(axis=1)
    must = totals >= p
    lab_count = st.count[:n_labels]  # a view: swaps below keep it current
    holes = np.argwhere(must[:, None] & (lab_count == 0))
    if holes.size == 0:
        return 0
    order = np.lexsort((col_rank[holes[:, 0]], totals[holes[:, 0]]))
    swaps = 0

    def labels_of(docs):
        cols, owner = _gather_rows(st.r_indptr, st.r_indices, docs)
        keep = cols < n_labels
        return cols[keep], owner[keep]

    def safe_to_remove(docs, part_of):
        """Docs whose leaving ``part_of`` (per doc) opens no hole."""
        cols, owner = labels_of(docs)
        bad = must[cols] & (lab_count[cols, part_of[owner]] < 2)
        return np.bincount(owner, weights=bad, minlength=docs.size) == 0, np.bincount(owner, minlength=docs.size)

    for lab, j in holes[order]:
        if lab_count[lab, j] > 0 or st.quota[j] == 0:
            continue
        docs = st.c_indices[st.c_indptr[lab] : st.c_indptr[lab + 1]]
        src = st.part[docs]
        docs, src = docs[(src != j) & (lab_count[lab, src] >= 2)], src[(src != j) & (lab_count[lab, src] >= 2)]
        if docs.size == 0:
            continue
        ok, nl = safe_to_remove(docs, src)
        if not ok.any():
            continue
        cand = np.flatnonzero(ok)
        x = cand[np.lexsort((docs[cand], nl[cand]))[0]]
        doc_x, k = int(docs[x]), int(src[x])
        in_j = np.flatnonzero(st.part == j)
        ok_z, nl_z = safe_to_remove(in_j, np.full(in_j.size, j, np.int64))
        if not ok_z.any():
            continue
        cand = np.flatnonzero(ok_z)
        doc_z = int(in_j[cand[np.lexsort((in_j[cand], nl_z[cand]))[0]]])
        for doc, old, new in ((doc_x, k, j), (doc_z, j, k)):
            cols = st.r_indices[st.r_indptr[doc] : st.r_indptr[doc + 1]]
            st.count[cols, old] -= 1
            st.count[cols, new] += 1
            st.part[doc] = new
        swaps += 1
    return swaps


def _member(values: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """``np.isin(values, pool)`` for hashes: sorted queries into the sorted pool (several times
    faster than np.isin or unsorted searchsorted on large uint64 arrays)."""
    out = np.zeros(values.shape, bool)
    if pool.size == 0 or values.size == 0:
        return out
    pool = np.sort(pool)
    order = np.argsort(values)
    sv = values[order]
    pos = np.minimum(np.searchsorted(pool, sv), pool.size - 1)
    out[order] = pool[pos] == sv
    return out


def _rebalance_labels(st: _State, n_labels: int, seed: int) -> int:
    """Finish with order-1 balancing: swap documents whose label sets differ by one label only.

    After the greedy pass (pair batches at order 2 hand out most documents and leave single
    labels less balanced) a label ``l`` may have too many documents in part ``A`` and too few
    in ``B``. A document of ``A`` with labels ``{l} + S`` is then swapped with a document of
    ``B`` with labels exactly ``S`` (label sets matched through a random 64-bit hash per label,
    summed per document): one ``l`` moves from A to B, every other label's counts and both part
    sizes stay the same, and only pairs containing ``l`` are touched; at order 2, among the
    candidates of a chunk, those whose pairs with ``l`` are over-filled in A move first. Labels
    are visited most frequent first (they weigh most in LD). Returns the number of swaps.
    """
    p = st.p
    rng = np.random.default_rng([seed, 2])
    h_lab = rng.integers(0, 2**63, size=n_labels, dtype=np.uint64)
    owner = np.repeat(np.arange(st.n), np.diff(st.r_indptr))
    is_lab = st.r_indices < n_labels
    lab_idx, owner = st.r_indices[is_lab], owner[is_lab]
    h_doc = np.zeros(st.n, np.uint64)
    np.add.at(h_doc, owner, h_lab[lab_idx])  # uint64 arithmetic wraps: a hash, not a count
    # only documents whose label set is another document's set minus one label take part
    targets = h_doc[owner] - h_lab[lab_idx]
    is_z = _member(h_doc, targets)
    entry = _member(targets, h_doc[is_z])
    x_lab, x_doc = lab_idx[entry], owner[entry]
    grouped = np.argsort(x_lab * st.n + x_doc, kind="stable")
    x_lab, x_doc = x_lab[grouped], x_doc[grouped]
    x_start = np.searchsorted(x_lab, np.arange(n_labels + 1))
    z_doc = np.flatnonzero(is_z)
    z_doc = z_doc[np.argsort(h_doc[z_doc], kind="stable")]  # ties: index (= random) order
    z_hash = h_doc[z_doc]  # sorted; a document's part is checked when it is looked up
    totals = st.count[:n_labels].sum(axis=1)
    share = st.quota / st.quota.sum()
    pairs = st.m > n_labels
    swaps = 0
    for lab in np.argsort(-totals, kind="stable").tolist():
        if totals[lab] < 2:
            break
        dev = st.count[lab] - totals[lab] * share
        if dev.max() - dev.min() <= 1.0:
            continue
        docs = x_doc[x_start[lab] : x_start[lab + 1]]
        if docs.size == 0:
            continue
        h_l, h_li = h_lab[lab], int(h_lab[lab])
        for _ in range(2 * p):
            a, b = int(np.argmax(dev)), int(np.argmin(dev))
            if dev[a] - dev[b] <= 1.0:
                break
            need = max(int((dev[a] - dev[b]) // 2), 1)
            done = 0
            xs = docs[st.part[docs] == a]
            for c0 in range(0, xs.size, 64):  # most labels need only a few swaps: look up in chunks
                chunk = xs[c0 : c0 + 64]
                lo = np.searchsorted(z_hash, h_doc[chunk] - h_l).tolist()
                found = []  # (x, z) pairs available in this chunk
                for x, i in zip(chunk.tolist(), lo):
                    target = (int(h_doc[x]) - h_li) % 2**64
                    end = min(i + 64, z_hash.size)  # bounded scan of the matching run
                    while i < end and int(z_hash[i]) == target:
                        if st.part[z_doc[i]] == b:
                            found.append((x, int(z_doc[i])))
                            break
                        i += 1
                if pairs and len(found) > 1:
                    # order 2: prefer moving documents whose pairs with `lab` are over-filled in a
                    cost = []
                    for x, _ in found:
                        cols = st.r_indices[st.r_indptr[x] : st.r_indptr[x + 1]]
                        cols = cols[cols >= n_labels]
                        pa = st.count[cols, a] - st.total[cols] * share[a]
                        pb = st.count[cols, b] - st.total[cols] * share[b]
                        cost.append(float(np.sum((np.abs(pa - 1) - np.abs(pa)) / st.quota[a]
                                                 + (np.abs(pb + 1) - np.abs(pb)) / st.quota[b])))
                    found = [found[i] for i in np.argsort(cost, kind="stable")]
                used = set()
                for x, z in found:
                    if z in used:
                        continue
                    used.add(z)
                    for doc, old, new in ((x, a, b), (z, b, a)):
                        cols = st.r_indices[st.r_indptr[doc] : st.r_indptr[doc + 1]]
                        st.count[cols, old] -= 1
                        st.count[cols, new] += 1
                        st.part[doc] = new
                    done += 1
                    if done >= need:
                        break
                if done >= need:
                    break
            swaps += done
            dev = st.count[lab] - totals[lab] * share
            if done == 0:
                break
    return swaps


def _stratify(
    r: sp.csr_matrix, parents: np.ndarray, quotas: np.ndarray, n_labels: int, seed: int, rebalance: bool
) -> np.ndarray:
    """The whole pass over strata matrix ``r``: columns ``0 .. n_labels-1`` are the labels, any
    further ones label pairs (``parents`` gives each column's labels)."""
    rng = np.random.default_rng(seed)
    # Shuffle the rows once: then every "in random order" below is plain index order.
    perm = rng.permutation(r.shape[0])
    r = r[perm]
    st = _State(r, parents, quotas, rng)
    col_rank = rng.permutation(st.m)  # random tie-break between equally rare strata

    # Phase 1: Sechidis et al. 2011, Alg. 1 -- repeatedly take the stratum with the fewest
    # unassigned documents and hand all of them out at once (_State.apportion). The priority
    # queue is updated lazily: a stratum gets a fresh entry only when its remaining count has
    # halved since its last one (stale entries are skipped when popped), which keeps the number
    # of heap operations near-linear while the order stays "rarest first" within a factor of 2.
    key = st.remaining.copy()
    heap = [(int(key[c]), int(col_rank[c]), int(c)) for c in np.flatnonzero(key > 0)]
    heapq.heapify(heap)
    while heap:
        rem, _, col = heapq.heappop(heap)
        if rem != key[col] or st.remaining[col] == 0:
            continue
        docs = st.unassigned(col)
        touched = st.assign(docs, st.apportion(col, docs.size))
        now = st.remaining[touched]
        stale = touched[(now > 0) & (2 * now <= key[touched])]
        if stale.size:
            stale = np.unique(stale)
            key[stale] = st.remaining[stale]
            for c in stale.tolist():
                heapq.heappush(heap, (int(key[c]), int(col_rank[c]), c))

    # Phase 2: documents without labels fill what is left of each quota, in random order, so
    # they spread in proportion to the free places.
    rest = np.flatnonzero(st.part < 0)
    if rest.size:
        st.part[rest] = np.repeat(np.arange(st.p), st.left)
        st.left[:] = 0

    # Phase 3: finish with order-1 balancing by swaps that change one label only.
    if rebalance:
        _rebalance_labels(st, n_labels, seed)

    # Phase 4: fill the holes the greedy left (labels that could be in every part but are not).
    _repair_presence(st, n_labels, col_rank)
    part = np.empty_like(st.part)
    part[perm] = st.part
    return part


def iterative_split(
    y, sizes: Sequence[Size], *, order: int = 1, seed: int = 0, rebalance: bool = True
) -> np.ndarray:
    """Split rows of a label matrix into parts of given sizes by iterative stratification.

    Sechidis, Tsoumakas & Vlahavas (2011), "On the stratification of multi-label data", Alg. 1,
    with these changes:

    * *Relative demand*: a document goes to the part with the smallest share of its quota already
      holding the label (the paper compares remaining desired counts, so at 0.8/0.2 a label with
      two documents never reaches the small part; iterstrat issue #6).
    * *Exact sizes*: a part whose quota is full accepts nothing more; every part ends with
      exactly the count from ``resolve_sizes`` (iterstrat issue #15 does not enforce them).
    * *Batches*: all unassigned documents of the rarest label are handed out at once (the
      greedy's choices for one label do not depend on which document is placed), so the run is
      near-linear in the number of non-zeros instead of re-scanning the matrix per document;
      the "rarest" priority is refreshed lazily (when a count halves).
    * *Order 2* (Szymanski & Kajdanowicz 2017): label pairs seen in at least two documents are
      strata of their own alongside the single labels (pairs are rarer, so mostly first); a pair
      batch also weighs its two labels' shares (``PAIR_LABEL_WEIGHT``).
    * Documents without labels fill what remains of each quota, in a seeded random order.
    * *Order-1 finish* (``rebalance``): swaps of two documents whose label sets differ by one
      label move that label from a part with too many to one with too few, changing no other
      label count and no part size (``_rebalance_labels``).
    * *Presence*: every label with at least as many documents as parts ends in every part
      (FZ = 0 for them) whenever one swap that opens no other hole can do it: the greedy's few
      remaining holes are filled by size-keeping swaps (``_repair_presence``). On realistic
      data no hole remains; tiny dense matrices with one-document parts can keep some.

    Trade-off: relative demand and presence put rare labels into small parts (a label with two
    documents at 0.8/0.2 ends one in each part). LD and rLD count that against the split, so on
    data with many labels of 2-5 documents iterstrat's LD can be lower than ours while it leaves
    such labels out of the test part (bench/split_bench.py, cooking: FLZ_avoidable 36 vs 0).

    Parameters
    ----------
    y : array-like or scipy sparse matrix, shape (n_docs, n_labels)
        0/1 label matrix (any non-zero counts as 1). A 1-D array is read as single-label classes.
    sizes : sequence of float or int
        One per part: fraction ``0 < x < 1`` or count ``>= 1`` (see ``resolve_sizes``). If they
        add up to less than all documents, the rest is stratified as an extra part and reported
        as ``-1``.
    order : 1 or 2
        1 balances labels; 2 also balances label pairs.
    seed : int
        Seed of every random choice (tie-breaks, document order); same inputs and seed give the
        same assignment.
    rebalance : bool
        Run the order-1 finish (default). Off, order 1 is about 2-4x faster and its LD about
        2x worse (bench/split_bench.py).

    Returns
    -------
    np.ndarray of int64, shape (n_docs,): the part of each row (``0 .. len(sizes)-1``, or -1).
    """
    if order not in (1, 2):
        raise ConfigError(f"order must be 1 or 2, got {order}.")
    y = _as_csr(y)
    n, n_labels = y.shape
    counts = resolve_sizes(sizes, n)
    rest = n - int(counts.sum())
    quotas = np.append(counts, rest) if rest > 0 else counts
    parents = np.repeat(np.arange(n_labels, dtype=np.int64), 2).reshape(-1, 2)
    strata = y
    if order == 2:
        z, pairs = label_pairs(y)
        keep = np.flatnonzero(np.asarray(z.sum(axis=0)).ravel() >= _MIN_PAIR)
        z, pairs = z[:, keep], pairs[keep]
        strata = sp.hstack([y, z], format="csr")
        strata.sort_indices()
        parents = np.concatenate([parents, pairs])
    part = _stratify(strata, parents, quotas, n_labels, seed, rebalance)
    if rest > 0:
        part[part == counts.size] = -1
    return part


def kfold(y, k: int, *, order: int = 1, seed: int = 0, rebalance: bool = True) -> np.ndarray:
    """Stratified k-fold: the fold (``0 .. k-1``) of each row; fold sizes differ by at most one."""
    y = _as_csr(y)
    n = y.shape[0]
    if k < 2:
        raise ConfigError(f"k-fold needs at least 2 folds, got {k}.")
    if k > n:
        raise ConfigError(f"{k} folds but only {n} documents; use at most {n} folds.")
    sizes = [n // k + (1 if i < n % k else 0) for i in range(k)]
    return iterative_split(y, sizes, order=order, seed=seed, rebalance=rebalance)


def carve(
    y, size: Size, *, order: int = 1, seed: int = 0, rebalance: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """Carve one stratified part out of a label matrix (e.g. a valid part out of train).

    Returns
    -------
    (kept_rows, carved_rows) : sorted int64 index arrays.
    """
    y = _as_csr(y)
    n = y.shape[0]
    carved = int(resolve_sizes([size], n)[0])
    if carved >= n:
        raise ConfigError(f"carving {carved} of {n} documents leaves nothing; use a smaller size.")
    part = iterative_split(y, [n - carved, carved], order=order, seed=seed, rebalance=rebalance)
    return np.flatnonzero(part == 0), np.flatnonzero(part == 1)


def random_split(y, sizes: Sequence[Size], *, seed: int = 0) -> np.ndarray:
    """A seeded random split with the same exact part sizes (the baseline of the measures).

    ``y`` may also be an int, the number of documents.
    """
    n = int(y) if isinstance(y, (int, np.integer)) else _as_csr(y).shape[0]
    counts = resolve_sizes(sizes, n)
    part = np.full(n, -1, np.int64)
    perm = np.random.default_rng(seed).permutation(n)
    part[perm[: int(counts.sum())]] = np.repeat(np.arange(counts.size), counts)
    return part


def skmultilearn_split(y, sizes: Sequence[Size], *, order: int = 1, seed: int = 0) -> np.ndarray:
    """scikit-multilearn 0.2.0's ``IterativeStratification``, for comparison.

    Known defects of that implementation (kept, since this is the reference to compare with):

    * it does not take the rarest label first: ``_get_most_desired_combination`` replaces the
      current choice only by a combination that is both larger *and* rarer, so at order 1 the
      first label in dictionary order wins;
    * ``_fold_tie_break`` is passed the per-combination demand instead of the fold sizes;
    * documents without labels go to random folds, and part sizes are not enforced;
    * it draws from numpy's global random state; passing ``random_state`` raises with current
      scikit-learn (shuffle=False), so we seed the global state here and restore it afterwards;
    * ``iterative_train_test_split`` is hard-coded to order 2 (we call the class directly);
    * two of its ``measures.py`` functions fail on numpy 2 (``split_quality`` replaces them).

    Sizes are passed as ``sample_distribution_per_fold``; the obtained sizes may differ from the
    requested ones.
    """
    from skmultilearn.model_selection import IterativeStratification

    y = _as_csr(y)
    n = y.shape[0]
    counts = resolve_sizes(sizes, n)
    rest = n - int(counts.sum())
    quotas = np.append(counts, rest) if rest > 0 else counts
    strat = IterativeStratification(
        n_splits=quotas.size, order=order, sample_distribution_per_fold=list(quotas / n), random_state=None
    )
    saved = np.random.get_state()
    np.random.seed(seed % (2**32))
    try:
        part = np.full(n, -1, np.int64)
        x = np.zeros((n, 1))
        for j, (_, test) in enumerate(strat.split(x, y)):
            part[np.asarray(test, dtype=np.int64)] = j
    finally:
        np.random.set_state(saved)
    if rest > 0:
        part[part == counts.size] = -1
    return part


# --- quality measures ----------------------------------------------------------------------


def _part_counts(m: sp.csr_matrix, assignment: np.ndarray, n_parts: int) -> np.ndarray:
    """(n_parts, n_columns) positives per part, rows with part -1 ignored."""
    keep = assignment >= 0
    onehot = sp.csr_matrix(
        (np.ones(int(keep.sum())), (assignment[keep], np.flatnonzero(keep))), shape=(n_parts, m.shape[0])
    )
    return np.asarray((onehot @ m).todense())


def _distribution(pos_part: np.ndarray, size_part: np.ndarray, pos_all: np.ndarray, n: int) -> float:
    """Katakis/Sechidis LD over columns: mean over columns and parts of |pos/neg - Pos/Neg|."""
    if pos_all.size == 0:
        return 0.0
    # a part (or the data set) holding only positives has no negatives: count one, as optisplit
    # does, rather than dividing by zero as skmultilearn does
    neg_part = np.maximum(size_part[:, None] - pos_part, 1)
    neg_all = np.maximum(n - pos_all, 1)
    return float(np.mean(np.abs(pos_part / neg_part - (pos_all / neg_all)[None, :])))


def split_quality(y, assignment, n_parts: int | None = None, sizes: Sequence[int] | None = None) -> dict:
    """Quality measures of a split (Sechidis et al. 2011; Szymanski & Kajdanowicz 2017;
    Tiittanen, Holm & Toronen 2022). Only labels (pairs) present in ``y`` count; rows with part
    -1 are ignored; lower is better for every measure.

    * ``LD``: label distribution, mean over labels and parts of ``|s/(|S|-s) - d/(|D|-d)|``
      (positive/negative ratio of the part vs the whole; a zero negative count is read as 1).
    * ``LPD``: the same over co-occurring label pairs ``a < b`` (scikit-multilearn's order-2
      version also mixes in single labels as pairs ``(a, a)``; here pairs only).
    * ``rLD``: relative label distribution (Tiittanen et al.), mean of ``|p_part - p| / p`` where
      ``p`` is the fraction of documents carrying the label.
    * ``DCP``: mean over labels of ``max_part(s/d - |S|/|D|)``: the largest excess share of a
      label's documents in one part (Tiittanen et al.'s DCP, generalised to unequal parts).
    * ``ED``: examples distribution, mean over parts of ``| |S| - requested |``.
    * ``FZ``: number of parts missing at least one label (the paper's definition);
      ``FLZ``: number of (part, label) pairs without a positive;
      ``FLZ_avoidable``: the same restricted to labels with at least ``n_parts`` documents
      (``iterative_split`` makes it 0 whenever the quotas allow).
    * ``FZLC``: number of parts missing at least one label pair; ``FLPZ``: (part, pair) pairs
      without a positive.

    Parameters
    ----------
    y : label matrix (n_docs, n_labels), dense or sparse
    assignment : int array (n_docs,), part per row (-1: in no part)
    n_parts : number of parts (default: ``max(assignment) + 1``)
    sizes : requested document count per part (default: equal parts), for ED

    Returns
    -------
    dict of measure name -> number, plus ``sizes`` (obtained) and ``size_error_max``.
    """
    y = _as_csr(y)
    assignment = np.asarray(assignment, dtype=np.int64)
    if assignment.shape != (y.shape[0],):
        raise DataError(f"assignment has shape {assignment.shape}, expected ({y.shape[0]},).")
    p = int(assignment.max()) + 1 if n_parts is None else int(n_parts)
    keep = assignment >= 0
    n = int(keep.sum())
    got = np.bincount(assignment[keep], minlength=p)
    want = np.asarray(sizes, dtype=float) if sizes is not None else np.full(p, n / p)

    pos = _part_counts(y, assignment, p)
    pos_all = pos.sum(axis=0)
    present = pos_all > 0
    pos, pos_all = pos[:, present], pos_all[present]
    pz, _ = label_pairs(y[keep])
    ppos = _part_counts(pz, assignment[keep], p)
    ppos_all = ppos.sum(axis=0)

    size_part = got.astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac_part = np.where(size_part[:, None] > 0, pos / np.maximum(size_part[:, None], 1), 0.0)
    frac_all = pos_all / max(n, 1)
    rld = float(np.mean(np.abs(frac_part - frac_all) / frac_all)) if pos_all.size else 0.0
    dcp = float(np.mean(np.max(pos / pos_all - (size_part / max(n, 1))[:, None], axis=0))) if pos_all.size else 0.0
    zero = pos == 0
    avoidable = pos_all >= p
    return {
        "LD": _distribution(pos, size_part, pos_all, n),
        "LPD": _distribution(ppos, size_part, ppos_all, n),
        "rLD": rld,
        "DCP": dcp,
        "ED": float(np.mean(np.abs(got - want))),
        "FZ": int(zero.any(axis=1).sum()),
        "FLZ": int(zero.sum()),
        "FLZ_avoidable": int(zero[:, avoidable].sum()),
        "FZLC": int((ppos == 0).any(axis=1).sum()) if ppos.size else 0,
        "FLPZ": int((ppos == 0).sum()),
        "sizes": got.tolist(),
        "size_error_max": float(np.max(np.abs(got - want))) if p else 0.0,
    }


# --- datasets: plan, split, manifest (used by `nlpkit split`) --------------------------------

METHODS = ("iterative", "random", "skmultilearn")


def parse_size(text: str | float | int | None, option: str) -> Size | None:
    """``"0.2"`` -> 0.2 (fraction), ``"300"`` -> 300 (count), ``"0"``/None -> None (no part)."""
    if text is None:
        return None
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        text = repr(text)
    s = str(text).strip()
    try:
        if s.lstrip("+").isdigit():
            value: Size = int(s)
            return None if value == 0 else value
        f = float(s)
    except ValueError:
        raise ConfigError(f"{option} {text!r} is not a number; give a fraction like 0.2 or a count like 500.") from None
    if f == 0:
        return None
    if not 0 < f < 1:
        raise ConfigError(f"{option} {text} is neither a fraction in (0, 1) nor a whole count >= 1; e.g. {option} 0.2.")
    return f


def _size_str(s: Size | None) -> str | None:
    return None if s is None else repr(s)


def plan_parts(
    n: int, *, test_size: Size | None, valid_size: Size | None, folds: int | None
) -> tuple[list[str], list[Size]]:
    """Part names and requested sizes for ``n`` documents (the CLI's --test-size/--valid-size/--folds).

    Without folds: ``train`` (the rest), ``valid`` if asked, ``test`` if asked. With ``folds=K``:
    ``test`` first if asked, then ``fold0 .. fold{K-1}`` sharing the rest equally.
    Raises ConfigError when the sizes do not fit in ``n`` documents.
    """
    if n < 2:
        raise DataError(f"only {n} document(s); a split needs at least 2.")
    fixed_names, fixed = [], []
    for name, size in (("valid", valid_size), ("test", test_size)):
        if size is not None:
            fixed_names.append(name)
            fixed.append(size)
    counts = resolve_sizes(fixed, n) if fixed else np.zeros(0, np.int64)
    rest = n - int(counts.sum())
    if folds is not None:
        if folds < 2:
            raise ConfigError(f"--folds {folds}: k-fold needs at least 2 folds.")
        if folds > rest:
            raise ConfigError(f"--folds {folds} but only {rest} documents to put in folds; use at most {rest} folds.")
        fold_counts = [rest // folds + (1 if i < rest % folds else 0) for i in range(folds)]
        return fixed_names + [f"fold{i}" for i in range(folds)], [int(c) for c in counts] + fold_counts
    if rest < 1:
        asked = ", ".join(f"--{nm}-size {_size_str(s)}" for nm, s in zip(fixed_names, fixed))
        raise ConfigError(f"sizes leave no document for train ({asked} of {n} documents); use smaller sizes.")
    return ["train"] + fixed_names, [rest] + [int(c) for c in counts]


def assign_parts(y, counts: Sequence[int], *, method: str, order: int, seed: int) -> np.ndarray:
    """Part index per row by ``method`` (iterative | random | skmultilearn); counts sum to n."""
    if method == "iterative":
        return iterative_split(y, list(counts), order=order, seed=seed)
    if method == "random":
        return random_split(y, list(counts), seed=seed)
    if method == "skmultilearn":
        return skmultilearn_split(y, list(counts), order=order, seed=seed)
    raise ConfigError(f"unknown method {method!r}; use one of: {', '.join(METHODS)}.")


def label_table(y, assignment: np.ndarray, n_parts: int) -> np.ndarray:
    """(n_labels, n_parts) document counts per label and part."""
    return _part_counts(_as_csr(y), np.asarray(assignment, np.int64), n_parts).T.astype(np.int64)


def split_dataset(ds, *, test_size=0.2, valid_size=None, folds=None, order=1, seed=0, method="iterative") -> dict:
    """Split one Dataset; returns ``{"parts", "names", "assignment", "requested", "order",
    "notes", "rare_labels", "quality", "random_quality"}``.

    ``notes`` are one-line warnings for the user (order 2 on single-label data, rare labels).
    """
    if method not in METHODS:
        raise ConfigError(f"unknown --method {method!r}; use one of: {', '.join(METHODS)}.")
    n = len(ds)
    if n < 2:
        raise DataError(f"{ds.source or 'the dataset'} has only {n} document(s); a split needs at least 2, add documents.")
    if ds.y.nnz == 0:
        where = f" in {ds.source}" if ds.source else ""
        raise DataError(f"no labels at all{where}; check --label-col / --label-cols (nothing to stratify).")
    names, counts = plan_parts(n, test_size=test_size, valid_size=valid_size, folds=folds)
    notes, order = _check_order(ds, order)
    assignment = assign_parts(ds.y, counts, method=method, order=order, seed=seed)
    parts = {name: ds.subset(np.flatnonzero(assignment == j)) for j, name in enumerate(names)}
    return _finish(ds.y, ds.label_names, names, counts, assignment, parts, order, seed, notes)


def assemble_split(train, test, valid=None, *, valid_size=None, order=1, seed=0, method="iterative") -> dict:
    """A split from parts the user already has; a missing valid part is carved from train
    (``valid_size`` of train's documents, same stratification). Same return value as
    ``split_dataset``; quality is measured on the union, label space = sorted union."""
    if method not in METHODS:
        raise ConfigError(f"unknown --method {method!r}; use one of: {', '.join(METHODS)}.")
    names_all = sorted(set(train.label_names) | set(test.label_names) | set(valid.label_names if valid else []))
    train, test = train.with_label_names(names_all), test.with_label_names(names_all)
    valid = valid.with_label_names(names_all) if valid is not None else None
    for part, ds in (("train", train), ("test", test), ("valid", valid)):
        if ds is not None and len(ds) == 0:
            raise DataError(f"the {part} file {ds.source} has no documents.")
    notes, order = _check_order_many([train, test] + ([valid] if valid is not None else []), order)
    if valid is None and valid_size is not None:
        n_train = len(train)
        if n_train < 2:
            raise DataError(f"train has {n_train} document(s); cannot carve a valid part from it.")
        carved = int(resolve_sizes([valid_size], n_train)[0])
        if carved >= n_train:
            raise ConfigError(f"--valid-size {valid_size} takes all {n_train} train documents; use a smaller size.")
        a = assign_parts(train.y, [n_train - carved, carved], method=method, order=order, seed=seed)
        train, valid = train.subset(np.flatnonzero(a == 0)), train.subset(np.flatnonzero(a == 1))
    names = ["train"] + (["valid"] if valid is not None else []) + ["test"]
    parts = {"train": train, "test": test}
    if valid is not None:
        parts["valid"] = valid
    y = sp.vstack([parts[nm].y for nm in names], format="csr")
    counts = [len(parts[nm]) for nm in names]
    assignment = np.repeat(np.arange(len(names)), counts)
    return _finish(y, names_all, names, counts, assignment, parts, order, seed, notes)


def _check_order(ds, order: int) -> tuple[list[str], int]:
    return _check_order_many([ds], order)


def _check_order_many(datasets, order: int) -> tuple[list[str], int]:
    if order not in (1, 2):
        raise ConfigError(f"--order {order}: use 1 (labels) or 2 (labels and label pairs).")
    notes = []
    if order == 2 and all(int(np.diff(ds.y.indptr).max(initial=0)) <= 1 for ds in datasets):
        notes.append("--order 2 balances label pairs, but every document has at most one label; using --order 1.")
        order = 1
    return notes, order


def _finish(y, label_names, names, counts, assignment, parts, order, seed, notes) -> dict:
    n_parts = len(names)
    rare = rare_labels(y, n_parts)
    if rare.size:
        shown = ", ".join(label_names[i] for i in rare[:10]) + (", ..." if rare.size > 10 else "")
        notes.append(
            f"{rare.size} label(s) have fewer documents than the {n_parts} parts and cannot be in every part: {shown}"
        )
    quality = split_quality(y, assignment, n_parts, sizes=counts)
    baseline = split_quality(y, random_split(y, list(counts), seed=seed), n_parts, sizes=counts)
    return {
        "parts": parts,
        "names": names,
        "assignment": assignment,
        "requested": dict(zip(names, (int(c) for c in counts))),
        "order": order,
        "notes": notes,
        "rare_labels": [label_names[i] for i in rare],
        "quality": quality,
        "random_quality": baseline,
        "label_counts": label_table(y, assignment, n_parts),
    }


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
    from pathlib import Path

    from nlpkit.data import DatasetOptions, file_sha256, read_dataset, write_split

    options = options or DatasetOptions()
    out_dir = Path(out_dir)
    if out_dir.exists() and not overwrite:  # fail before any work (write_split checks again)
        raise ConfigError(f"output folder exists: {out_dir}; choose another --out or pass --overwrite.")
    if folds is not None and valid_size is not None and parse_size(valid_size, "--valid-size") is not None:
        raise ConfigError("--valid-size does not go with --folds (each fold serves as valid in turn); drop one.")
    valid_sz = parse_size("0.1" if valid_size is None else valid_size, "--valid-size")
    test_sz = parse_size(test_size, "--test-size") if test_size is not None else (None if folds else 0.2)
    if input is not None:
        ds = read_dataset(input, options)
        sources = {"input": {"path": str(input), "sha256": file_sha256(input)}}
        result = split_dataset(ds, test_size=test_sz, valid_size=None if folds else valid_sz, folds=folds,
                               order=order, seed=seed, method=method)
    else:
        if train is None or test is None:
            raise ConfigError("give one INPUT file to split, or both --train FILE and --test FILE.")
        if test_sz is None and test_size is not None:
            raise ConfigError("--test-size 0 does nothing with --test FILE; drop it.")
        files = {"train": train, "test": test} | ({"valid": valid} if valid is not None else {})
        read = {role: read_dataset(path, options) for role, path in files.items()}
        sources = {role: {"path": str(path), "sha256": file_sha256(path)} for role, path in files.items()}
        result = assemble_split(read["train"], read["test"], read.get("valid"), valid_size=valid_sz,
                                order=order, seed=seed, method=method)
    for note in result["notes"]:
        if warn is not None:
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
            "dataset": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(options).items()},
        },
        "sizes": {
            "requested": result["requested"],
            "obtained": {nm: len(result["parts"][nm]) for nm in result["names"]},
        },
        "quality": result["quality"],
        "random_quality": result["random_quality"],
        "rare_labels": result["rare_labels"],
    }
    split = write_split(out_dir, result["parts"], manifest, overwrite=overwrite)
    return split, result, manifest
