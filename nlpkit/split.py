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
from nlpkit.seeds import check_seed

__all__ = [
    "resolve_sizes",
    "iterative_split",
    "kfold",
    "carve",
    "check_seed",
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


def resolve_sizes(
    sizes: Sequence[Size], n: int, *, names: Sequence[str] | None = None, options: Sequence[str] | None = None
) -> np.ndarray:
    """Turn requested part sizes into exact document counts.

    Parameters
    ----------
    sizes : sequence of float or int
        One entry per part: a fraction of ``n`` (a float with ``0 < x < 1``) or a count (an
        integer ``>= 1``). They may add up to less than ``n``: the rest is then left out (part
        ``-1`` in the assignment).
    n : int
        Number of documents.
    names, options : sequences of str, optional
        The parts' names ("valid", "test") and the options that set their sizes ("--valid-size"),
        used in the error for a part that would get no document.

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
        j = int(empty[0])
        what = f"the {names[j]} part" if names else f"part {j}"
        size = _size_str(sizes[j])
        if options:
            opt = options[j]
            raise ConfigError(
                f"{what} would get no document ({opt} {size} of {n} documents); use a larger {opt},"
                f" a count such as {opt} 1, or {opt} 0 for no {names[j] if names else 'such'} part."
            )
        raise ConfigError(
            f"{what} would get no document (size {size} of {n} documents); use a larger size or a count >= 1."
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


# Batches up to this many documents are placed one by one in plain Python (cheaper than the
# vectorised path's fixed cost).
_SMALL_BATCH = 8
# Weight of LD against LPD in the order-2 objective (_State.set_objective, _refine_swaps). The
# order-1 finish has already balanced the labels; at 0.1 the swaps still bring LD down to order
# 1's or below on cooking and Reuters while lowering LPD most (1 lowers LPD about half as much;
# bench/split_bench.py).
LD_WEIGHT = 0.1
_REPAIR_TRIES = 8  # order 2: documents tried per hole in _repair_presence
_REFINE_ROUNDS = 30  # at most this many rounds of swaps in _refine_swaps (two parts; fewer with more) ...
_REFINE_MIN_GAIN = 1e-3  # ... which stops after a round that lowers its objective by less than this share


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
        self.share = self.quota / self.quota.sum()  # requested share of each part

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

        A *label*'s document goes to the open part with the largest relative remaining demand,
        i.e. the smallest ``assigned / quota`` (the paper compares remaining desired counts, so
        at 0.8/0.2 a label with two documents never reaches the 0.2 part -- iterstrat issue #6).
        A *label pair*'s document goes to the open part with the largest remaining desired
        count ``total * share_j - assigned_j``, as in Szymanski & Kajdanowicz (2017): a batch
        holds all of the pair's remaining documents, so its final count per part lands on the
        nearest integers to its share, which is what LPD measures (pairs need not be in every
        part; their labels are balanced afterwards by ``_rebalance_labels``). Ties go to the part
        with the most free places (Sechidis), then to a random part.

        Keys of slot ``t`` of part ``j`` (its ``t``-th document from this batch; the greedy takes
        the ``k`` smallest): ``(c_j + t) / quota_j`` for a label, ``c_j + t - total * share_j``
        for a pair. (Batches up to ``_SMALL_BATCH`` labels use ``(2 c_j + t) / quota_j``, with
        ``c_j`` taken at the start of the batch: that is how order-1 splits have always been made,
        kept so that they do not change.)
        """
        pair = self.parents[col, 0] != self.parents[col, 1]
        tie = self.rng.random(self.p)
        if k <= _SMALL_BATCH:
            cc, c0 = self.count[col].tolist(), self.count[col].tolist()
            want = (self.total[col] * self.share).tolist()
            left, quota = self.left.tolist(), self.quota.tolist()
            out = []
            for _ in range(k):
                best, best_key = -1, None
                for j in range(self.p):
                    if left[j] > 0:
                        first = cc[j] - want[j] if pair else (cc[j] + c0[j]) / quota[j]
                        key = (first, -left[j], tie[j])
                        if best_key is None or key < best_key:
                            best, best_key = j, key
                out.append(best)
                cc[best] += 1
                left[best] -= 1
            return np.array(out, np.int64)
        slots = np.minimum(self.left, k)
        j = np.repeat(np.arange(self.p), slots)
        t = np.arange(j.size) - np.repeat(np.cumsum(slots) - slots, slots)
        if pair:
            key1 = self.count[col, j] + t - self.total[col] * self.share[j]
        else:
            key1 = (self.count[col, j] + t) / self.quota[j]
        take = _lexsort((tie[j], -(self.left[j] - t), key1))[:k]
        return np.sort(j[take], kind="stable")

    def apportion_largest(self, k: int) -> np.ndarray:
        """Parts for ``k`` documents that each want the largest part with free places (ties:
        the most free places, then a random part): ``apportion`` for ``k`` pairs of one
        document each, in one go."""
        tie = self.rng.random(self.p)
        slots = np.minimum(self.left, k)
        j = np.repeat(np.arange(self.p), slots)
        t = np.arange(j.size) - np.repeat(np.cumsum(slots) - slots, slots)
        take = _lexsort((tie[j], -(self.left[j] - t), -self.share[j]))[:k]
        return np.sort(j[take], kind="stable")

    # -- the order-2 objective: LPD + LD_WEIGHT * LD, as split_quality measures them ----------

    def set_objective(self, n_labels: int, ld_weight: float) -> None:
        """Weigh each stratum so that summed costs are ``LPD + ld_weight * LD`` (times the
        number of parts): every label and every pair counts once in its measure's mean."""
        n_pairs = self.m - n_labels
        self.weight = np.empty(self.m)
        self.weight[:n_labels] = ld_weight / max(int(np.count_nonzero(self.total[:n_labels])), 1)
        self.weight[n_labels:] = 1.0 / max(n_pairs, 1)
        self.ratio = self.total / np.maximum(self.n - self.total, 1)  # the whole's pos/neg

    def _term(self, cols: np.ndarray, counts: np.ndarray, parts: np.ndarray) -> np.ndarray:
        """split_quality's ``|s / (|S| - s) - d / (|D| - d)|`` for strata ``cols`` holding
        ``counts`` documents in ``parts`` (a zero negative count read as 1, as there)."""
        size = self.quota[parts]
        return np.abs(counts / np.maximum(size - counts, 1) - self.ratio[cols])

    def objective(self) -> float:
        """The weighted objective of the current assignment (summed over strata and parts)."""
        parts = np.arange(self.p)
        cols = np.arange(self.m)[:, None]
        return float(np.sum(self.weight[:, None] * self._term(cols, self.count, parts[None, :])))

    def move_cost(self, cols: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """Change of the weighted objective, per entry, if one document of stratum ``cols[i]``
        moved from part ``src[i]`` to ``dst[i]`` (everything else as it is now)."""
        s, d = self.count[cols, src], self.count[cols, dst]
        change = (self._term(cols, s - 1, src) - self._term(cols, s, src)
                  + self._term(cols, d + 1, dst) - self._term(cols, d, dst))
        return self.weight[cols] * change

    def doc_move_cost(self, docs: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        """``move_cost`` summed over each document's strata: the cost of moving it alone."""
        cols, owner = _gather_rows(self.r_indptr, self.r_indices, docs)
        cost = self.move_cost(cols, src[owner], dst[owner])
        return np.bincount(owner, weights=cost, minlength=docs.size)

    def move(self, doc: int, old: int, new: int) -> None:
        """Move one assigned document to another part, keeping the counts current."""
        cols = self.r_indices[self.r_indptr[doc] : self.r_indptr[doc + 1]]
        self.count[cols, old] -= 1
        self.count[cols, new] += 1
        self.part[doc] = new


def _repair_presence(st: _State, n_labels: int, col_rank: np.ndarray, by_cost: bool = False,
                     n_parts: int | None = None) -> int:
    """Make every label with at least as many documents as parts present in every part.

    The main pass (relative demand) leaves few such holes, but it can: rarer labels' batches may
    already have put all of a label's documents into some parts. Each hole (label ``l`` missing
    from part ``j``), rarest label first, is filled by a swap that keeps every part's size: a
    document with ``l`` moves to ``j`` from a part holding at least two of ``l``, and a document
    of ``j`` (preferably without labels, else with the fewest) moves back; neither move may open
    a new hole. Returns the number of swaps. (Seeding every part with every label up front, as
    tried first, also guarantees presence but made LD clearly worse on Reuters-21578.)

    At order 2 (``by_cost``) both documents are instead the ones whose move costs the objective
    least (``_State.doc_move_cost``), and presence is asked of the first ``n_parts`` parts only:
    the requested ones, not the rest left out of a split whose sizes add up to less than all
    documents (split_quality's FLZ_avoidable counts the requested parts only). Order 1 asks it of
    the requested parts too; without a rest (every split the CLI makes) that is all parts.
    """
    p = st.p if n_parts is None else n_parts
    totals = st.count[:n_labels].sum(axis=1)
    must = totals >= p
    lab_count = st.count[:n_labels]  # a view: swaps below keep it current
    holes = np.argwhere(must[:, None] & (lab_count[:, :p] == 0))
    if holes.size == 0:
        return 0
    order = np.lexsort((col_rank[holes[:, 0]], totals[holes[:, 0]]))
    swaps = 0

    def labels_of(docs):
        cols, owner = _gather_rows(st.r_indptr, st.r_indices, docs)
        keep = cols < n_labels
        return cols[keep], owner[keep]

    def safe_to_remove(docs, part_of, arriving=None):
        """Docs whose leaving ``part_of`` (per doc) opens no hole, ``arriving`` (labels of a
        document coming in) taken into account."""
        cols, owner = labels_of(docs)
        have = lab_count[cols, part_of[owner]]
        if arriving is not None:
            have = have + np.isin(cols, arriving)
        bad = must[cols] & (have < 2) & (part_of[owner] < p)
        return np.bincount(owner, weights=bad, minlength=docs.size) == 0, np.bincount(owner, minlength=docs.size)

    for lab, j in holes[order]:
        if lab_count[lab, j] > 0 or st.quota[j] == 0:
            continue
        docs = st.c_indices[st.c_indptr[lab] : st.c_indptr[lab + 1]]
        src = st.part[docs]
        spare = (src != j) & ((lab_count[lab, src] >= 2) | (src >= p))
        docs, src = docs[spare], src[spare]
        if docs.size == 0:
            continue
        ok, nl = safe_to_remove(docs, src)
        if not ok.any():
            continue
        cand = np.flatnonzero(ok)
        # rank candidates by the fewest labels, or at order 2 by the objective's cost of the move
        rank = nl[cand] if not by_cost else st.doc_move_cost(docs[cand], src[cand], np.full(cand.size, j))
        cand = cand[np.lexsort((docs[cand], rank))]
        in_j = np.flatnonzero(st.part == j)
        # order 1 tries the first candidate only, as it always has; order 2 tries a few, and
        # lets the document coming in cover the labels of the one going out (a small part whose
        # every document holds some label alone can then still take a swap)
        for x in cand[: _REPAIR_TRIES if by_cost else 1].tolist():
            doc_x, k = int(docs[x]), int(src[x])
            arriving = labels_of(np.array([doc_x]))[0] if by_cost else None
            ok_z, nl_z = safe_to_remove(in_j, np.full(in_j.size, j, np.int64), arriving)
            if not ok_z.any():
                continue
            zs = np.flatnonzero(ok_z)
            if by_cost:
                rank = st.doc_move_cost(in_j[zs], np.full(zs.size, j), np.full(zs.size, k))
            else:
                rank = nl_z[zs]
            doc_z = int(in_j[zs[np.lexsort((in_j[zs], rank))[0]]])
            st.move(doc_x, k, j)
            st.move(doc_z, j, k)
            swaps += 1
            break
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
                    # order 2: prefer moving documents whose pairs with `lab` (the only pairs
                    # the swap changes) are over-filled in a
                    cols, owner = _gather_rows(st.r_indptr, st.r_indices, np.array([x for x, _ in found]))
                    keep = (cols >= n_labels) & ((st.parents[cols, 0] == lab) | (st.parents[cols, 1] == lab))
                    cols, owner = cols[keep], owner[keep]
                    pa = st.count[cols, a] - st.total[cols] * share[a]
                    pb = st.count[cols, b] - st.total[cols] * share[b]
                    cost = np.bincount(owner, weights=(np.abs(pa - 1) - np.abs(pa)) / st.quota[a]
                                       + (np.abs(pb + 1) - np.abs(pb)) / st.quota[b], minlength=len(found))
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


def _refine_swaps(st: _State, n_labels: int, seed: int, n_parts: int) -> int:
    """Order 2: lower ``LPD + LD_WEIGHT * LD`` by swaps of two documents between two parts.

    A swap exchanges ``x = K + {l}`` in part ``a`` with ``z = K + {l'}`` in part ``b`` (``l'``
    may be nothing): label sets that differ in one label each, matched through a random 64-bit
    hash per label summed over a document's labels minus one (as in ``_rebalance_labels``).
    Such a swap changes only ``l``, ``l'`` and their pairs with ``K``, so its cost is the sum of
    one cost per (document, label) *entry* -- the strata of that label in that document -- all
    computed at once from per-stratum move costs (``_State.move_cost``). Within each ``K`` the
    cheapest entries of ``a`` and of ``b`` are paired; the pairs are tried cheapest first, each
    re-costed on the current counts and made only if that lowers the objective and opens no hole
    (a label with at least as many documents as requested parts never leaves one of them where
    it is alone). Part sizes never change; unlabeled documents never move. A round visits every
    pair of parts; rounds stop once one lowers the objective by less than ``_REFINE_MIN_GAIN``
    (at most ``_REFINE_ROUNDS`` with two parts, proportionally fewer with more). Optisplit
    (Tiittanen, Holm & Toronen 2022) likewise improves a split by greedy moves after the fact.
    Returns the number of swaps.
    """
    rng = np.random.default_rng([seed, 3])
    h_lab = rng.integers(0, 2**63, size=n_labels, dtype=np.uint64)
    owner = np.repeat(np.arange(st.n), np.diff(st.r_indptr))
    is_lab = st.r_indices < n_labels
    e_doc, e_lab = owner[is_lab], st.r_indices[is_lab]  # sorted by document, then label
    h_doc = np.zeros(st.n, np.uint64)
    np.add.at(h_doc, e_doc, h_lab[e_lab])  # uint64 arithmetic wraps: a hash, not a count
    labeled = np.flatnonzero(np.bincount(e_doc, minlength=st.n))
    # an entry's strata: its label, and each pair stratum (u, v) of the document for u and v
    pair_doc, pair_col = owner[~is_lab], st.r_indices[~is_lab]
    code = e_doc * n_labels + e_lab
    pair_ent = np.concatenate([np.searchsorted(code, pair_doc * n_labels + st.parents[pair_col, 0]),
                               np.searchsorted(code, pair_doc * n_labels + st.parents[pair_col, 1])])
    item_ent = np.concatenate([np.arange(e_doc.size), pair_ent])
    order = np.argsort(item_ent, kind="stable")
    # entries: (document, one of its labels), keyed by the rest of its set; (document, none)
    ent = _Entries(
        doc=np.concatenate([e_doc, labeled]),
        lab=np.concatenate([e_lab, np.full(labeled.size, -1, np.int64)]),
        key=np.concatenate([h_doc[e_doc] - h_lab[e_lab], h_doc[labeled]]),
        cols=np.concatenate([e_lab, pair_col, pair_col])[order],
        ptr=np.searchsorted(item_ent[order], np.arange(e_doc.size + labeled.size + 1)),
    )
    # only entries sharing their key with another one can ever be swapped
    _, group, size = np.unique(ent.key, return_inverse=True, return_counts=True)
    ent.keep(size[group.ravel()] > 1, group.ravel())
    must = st.total[:n_labels] >= n_parts
    swaps = 0
    # a round visits every pair of parts: with more parts, fewer rounds keep the work bounded
    for _ in range(max(2, _REFINE_ROUNDS // (st.p - 1))):
        before = st.objective()
        # each pair of parts looks only at the entries of its two parts (as of the round's start)
        where = st.part[ent.doc]
        by_part = np.argsort(where, kind="stable")
        bounds = np.searchsorted(where[by_part], np.arange(st.p + 1))
        for a in range(st.p):
            for b in range(a + 1, st.p):
                idx = np.concatenate([by_part[bounds[a] : bounds[a + 1]], by_part[bounds[b] : bounds[b + 1]]])
                swaps += _refine_round(st, a, b, ent, idx, must, n_parts)
        if st.objective() > (1 - _REFINE_MIN_GAIN) * before:
            break
    return swaps


class _Entries:
    """The swap candidates of ``_refine_swaps``: one row per (document, label or none), its
    strata in ``cols[ptr[i] : ptr[i + 1]]`` (CSR-like)."""

    def __init__(self, doc: np.ndarray, lab: np.ndarray, key: np.ndarray, cols: np.ndarray, ptr: np.ndarray):
        self.doc, self.lab, self.key, self.cols, self.ptr = doc, lab, key, cols, ptr
        self.group = np.zeros(doc.size, np.int64)

    def keep(self, mask: np.ndarray, group: np.ndarray) -> None:
        """Keep the entries in ``mask`` (with their strata), each with its key's group number."""
        idx = np.flatnonzero(mask)
        lens = np.diff(self.ptr)[idx]
        self.cols, _ = _gather_rows(self.ptr, self.cols, idx)
        self.ptr = np.append(0, np.cumsum(lens))
        self.doc, self.lab, self.key, self.group = self.doc[idx], self.lab[idx], self.key[idx], group[idx]


def _refine_round(st: _State, a: int, b: int, ent: _Entries, idx: np.ndarray, must: np.ndarray,
                  n_parts: int) -> int:
    """One round of ``_refine_swaps`` between parts ``a`` and ``b`` over entries ``idx``;
    returns the swaps made."""
    if idx.size == 0:
        return 0
    # the cost of moving one document of each stratum a -> b (row 0) and b -> a (row 1)
    every = np.arange(st.m)
    col_cost = np.stack([st.move_cost(every, np.full(st.m, a), np.full(st.m, b)),
                         st.move_cost(every, np.full(st.m, b), np.full(st.m, a))])
    now = st.part[ent.doc[idx]]  # idx was taken at the start of the round: some have moved since
    side = np.where(now == a, 0, np.where(now == b, 1, -1))
    cols, owner = _gather_rows(ent.ptr, ent.cols, idx)
    item_side = side[owner]
    live = item_side >= 0
    cost = np.bincount(owner[live], weights=col_cost[item_side[live], cols[live]], minlength=idx.size)
    cost = cost.astype(np.float64, copy=False)  # bincount of no weights at all gives integers
    # a label that must stay in a part where it is alone cannot leave it
    lab = ent.lab[idx]
    stuck = (lab >= 0) & (side >= 0)
    src = np.where(side[stuck] == 0, a, b)
    stuck[stuck] = must[lab[stuck]] & (st.count[lab[stuck], src] < 2) & (src < n_parts)
    # a swap pairs an entry of a with one of b and needs a negative sum: drop entries that cannot
    ok = (side >= 0) & ~stuck
    best = [cost[ok & (side == s)].min(initial=np.inf) for s in (0, 1)]
    cand = np.flatnonzero(ok & (cost < -np.where(side == 0, best[1], best[0])))
    if cand.size == 0:
        return 0
    ent_group = ent.group[idx]
    cand = cand[np.argsort(cost[cand], kind="stable")]
    # by key, a then b, cheapest first
    cand = cand[np.argsort(2 * ent_group[cand] + side[cand], kind="stable")]
    grp, sd = ent_group[cand], side[cand]
    start = np.flatnonzero(np.r_[True, (grp[1:] != grp[:-1]) | (sd[1:] != sd[:-1])])
    length = np.diff(np.append(start, cand.size))
    # an a-block followed by the b-block of the same key: pair them rank by rank
    ia = np.flatnonzero((sd[start[:-1]] == 0) & (sd[start[1:]] == 1) & (grp[start[:-1]] == grp[start[1:]]))
    n_pair = np.minimum(length[ia], length[ia + 1])
    blk = np.repeat(np.arange(ia.size), n_pair)
    rank = np.arange(blk.size) - np.repeat(np.cumsum(n_pair) - n_pair, n_pair)
    ex, ez = cand[start[ia][blk] + rank], cand[start[ia + 1][blk] + rank]
    pred = cost[ex] + cost[ez]
    good = np.flatnonzero(pred < 0)
    good = good[np.argsort(pred[good], kind="stable")]
    ex, ez = idx[ex[good]], idx[ez[good]]  # entry numbers
    # costs were computed before this round's swaps: once a swap moving label l no longer pays
    # (l is balanced now), l's other candidates would mostly fail too and wait for the next round
    moved = np.zeros(st.n, bool)
    blocked = np.zeros(must.size + 1, bool)  # by label; index -1 is "no label", never blocked
    swaps = 0
    for i, j in zip(ex.tolist(), ez.tolist()):
        x, z, lx, lz = int(ent.doc[i]), int(ent.doc[j]), int(ent.lab[i]), int(ent.lab[j])
        if lx == lz or moved[x] or moved[z] or blocked[lx] or blocked[lz]:
            continue  # lx == lz: the same label set, a swap that changes nothing
        cx, cz = ent.cols[ent.ptr[i] : ent.ptr[i + 1]], ent.cols[ent.ptr[j] : ent.ptr[j + 1]]
        hole = ((lx >= 0 and a < n_parts and must[lx] and st.count[lx, a] < 2)
                or (lz >= 0 and b < n_parts and must[lz] and st.count[lz, b] < 2))
        change = np.concatenate([st.move_cost(cx, np.full(cx.size, a), np.full(cx.size, b)),
                                 st.move_cost(cz, np.full(cz.size, b), np.full(cz.size, a))])
        if hole or change.sum() >= -1e-9 * np.abs(change).sum():  # a hole, or no gain beyond rounding
            blocked[lx] = blocked[lz] = True
            blocked[-1] = False
            continue
        st.move(x, a, b)
        st.move(z, b, a)
        moved[x] = moved[z] = True
        swaps += 1
    return swaps


def _stratify(
    r: sp.csr_matrix, parents: np.ndarray, quotas: np.ndarray, n_labels: int, seed: int, rebalance: bool,
    n_parts: int,
) -> np.ndarray:
    """The whole pass over strata matrix ``r``: columns ``0 .. n_labels-1`` are the labels, any
    further ones label pairs (``parents`` gives each column's labels). ``quotas`` has one entry
    per part, the first ``n_parts`` requested, a last one for the rest if any."""
    rng = np.random.default_rng(seed)
    # Shuffle the rows once: then every "in random order" below is plain index order.
    perm = rng.permutation(r.shape[0])
    r = r[perm]
    st = _State(r, parents, quotas, rng)
    col_rank = rng.permutation(st.m)  # random tie-break between equally rare strata

    # Order 2: a pair seen in one document only has its largest desired count in the largest
    # part. As the rarest strata these pairs would come first, one heap entry each; their
    # documents get the same parts in one batch (the vectorised apportion with equal counts).
    once = np.flatnonzero(st.total[n_labels:] == 1) + n_labels
    if once.size:
        docs = np.unique(st.c_indices[st.c_indptr[once]])
        st.assign(docs, st.apportion_largest(docs.size))

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
    pairs = st.m > n_labels
    if pairs:
        st.set_objective(n_labels, LD_WEIGHT)
    if not pairs:
        _repair_presence(st, n_labels, col_rank, n_parts=n_parts)
    else:  # a swap can make another hole fillable: repeat while holes get filled
        for _ in range(_REPAIR_TRIES):
            if _repair_presence(st, n_labels, col_rank, by_cost=True, n_parts=n_parts) == 0:
                break

    # Phase 5 (order 2): swaps that lower LPD + LD_WEIGHT * LD and open no hole.
    if pairs:
        _refine_swaps(st, n_labels, seed, n_parts)
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
    * *Order 2* (Szymanski & Kajdanowicz 2017): every co-occurring label pair is a stratum of
      its own alongside the single labels (pairs are rarer, so mostly first); a pair's documents
      go where its desired count is largest (the paper's rule, see ``_State.apportion``). After
      the order-1 finish and the presence repair below, size-keeping swaps lower
      ``LPD + LD_WEIGHT * LD`` as ``split_quality`` measures them (``_refine_swaps``).
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
    seed = check_seed(seed)
    y = _as_csr(y)
    n, n_labels = y.shape
    counts = resolve_sizes(sizes, n)
    rest = n - int(counts.sum())
    quotas = np.append(counts, rest) if rest > 0 else counts
    parents = np.repeat(np.arange(n_labels, dtype=np.int64), 2).reshape(-1, 2)
    strata = y
    if order == 2:
        # every co-occurring pair is a stratum, those in one document too (Szymanski &
        # Kajdanowicz 2017; LPD counts them): its desired counts send it to the largest part
        z, pairs = label_pairs(y)
        strata = sp.hstack([y, z], format="csr")
        strata.sort_indices()
        parents = np.concatenate([parents, pairs])
    part = _stratify(strata, parents, quotas, n_labels, seed, rebalance, counts.size)
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
    seed = check_seed(seed)
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

    seed = check_seed(seed)
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
    options = [f"--{nm}-size" for nm in fixed_names]
    counts = resolve_sizes(fixed, n, names=fixed_names, options=options) if fixed else np.zeros(0, np.int64)
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
    overlap = _overlap_notes({"train": train, "valid": valid, "test": test})
    notes, order = _check_order_many([train, test] + ([valid] if valid is not None else []), order)
    notes = overlap + notes
    if valid is None and valid_size is not None:
        n_train = len(train)
        if n_train < 2:
            raise DataError(f"train has {n_train} document(s); cannot carve a valid part from it.")
        carved = int(resolve_sizes([valid_size], n_train, names=["valid"], options=["--valid-size"])[0])
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


def _overlap_notes(parts: dict) -> list[str]:
    """Refuse parts that share a document id (DataError); one warning per part that shares texts
    with the test part.

    An id in two parts is one document in both: test scores on it would measure memory, not
    generalisation. Ids that are row numbers (a file without an id column) are not compared.
    Equal texts may be different documents (short texts repeat in real data), so they only warn.
    """
    names = [nm for nm in ("train", "valid", "test") if parts.get(nm) is not None]
    for a_pos, a in enumerate(names):
        for b in names[a_pos + 1 :]:
            first, second = parts[a], parts[b]
            if first.row_number_ids or second.row_number_ids:
                continue
            shared = set(first.ids).intersection(second.ids)
            if shared:
                doc_id = next(i for i in second.ids if i in shared)
                raise DataError(
                    f"id '{doc_id}' is in both the {a} file {first.source} and the {b} file {second.source}"
                    f" ({len(shared)} shared id(s)); a document belongs in one part only: remove the shared"
                    f" documents from one file, or make the ids unique across the files."
                )
    notes = []
    test = parts["test"]
    for other in ("train", "valid"):
        ds = parts.get(other)
        if ds is None:
            continue
        texts = set(ds.texts)
        same = [i for i, t in enumerate(test.texts) if t in texts]
        if same:
            example = "" if test.row_number_ids else f", e.g. id '{test.ids[same[0]]}'"
            notes.append(
                f"{len(same)} test document(s) of {test.source} have the same text as a {other} document"
                f" of {ds.source}{example}; if they are the same documents, remove them from one file"
                f" (test scores on them are optimistic)."
            )
    return notes


def labels_missing_from_train(parts: dict) -> dict[str, dict[str, int]]:
    """Labels of the valid and test parts that have no train document, with how many documents of
    that part carry each: ``{"test": {"label": n_docs, ...}, ...}``; parts without any are left out.

    ``parts`` maps part names to Datasets in one label space (a split's parts). No model learns such
    a label from train: on test its documents count as misses, on valid no rule is tuned for it.
    """
    train = parts.get("train")
    if train is None:
        return {}
    in_train = np.asarray(train.y.sum(axis=0)).ravel() > 0
    missing: dict[str, dict[str, int]] = {}
    for name in ("valid", "test"):
        ds = parts.get(name)
        if ds is None or ds.label_names != train.label_names:
            continue
        counts = np.asarray(ds.y.sum(axis=0)).ravel()
        found = {label: int(c) for label, c, seen in zip(ds.label_names, counts, in_train) if c and not seen}
        if found:
            missing[name] = found
    return missing


def missing_labels_notes(missing: dict[str, dict[str, int]]) -> list[str]:
    """One warning per part of :func:`labels_missing_from_train`'s result."""
    notes = []
    for part, found in missing.items():
        names = sorted(found, key=lambda name: (-found[name], name))  # most documents first
        shown = ", ".join(f"{name} ({found[name]} {part} document{'s' if found[name] != 1 else ''})"
                          for name in names[:5])
        more = f", ... ({len(names)} labels in all)" if len(names) > 5 else ""
        effect = "they count as misses" if part == "test" else "no decision rule is tuned for them"
        notes.append(
            f"{len(names)} label(s) occur in {part} but never in train: {shown}{more}; no model learns them"
            f" from train, and {effect}. Add train documents with these labels, or remove them from {part}."
        )
    return notes


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

    from nlpkit.data import NA_VALUES, DatasetOptions, dropped_note, file_sha256, read_dataset, write_split

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
    old_sha, leftovers = _replaced_split(out_dir) if overwrite else (None, [])
    split = write_split(out_dir, result["parts"], manifest, overwrite=overwrite)
    if leftovers:
        what = " (old reports)" if "report/" in leftovers else ""
        runs = ("runs recorded on the old split no longer match the new one; re-run them to compare"
                if old_sha != split.fingerprint else "the split itself is unchanged")
        warn(f"--overwrite replaced the split in {out_dir} and removed {', '.join(leftovers)} from it{what}; {runs}.")
    return split, result, manifest


def _replaced_split(path) -> tuple[str | None, list[str]]:
    """(split_sha256, entries that are not the split's own files) of an existing split folder."""
    import json
    from pathlib import Path

    path = Path(path)
    try:
        manifest = json.loads((path / "split.json").read_text(encoding="utf-8"))
        parts = manifest["parts"]
        own = {"split.json"} | {info.get("file", f"{name}.jsonl") for name, info in parts.items()}
        entries = sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir()
                         if p.name not in own and not p.name.startswith("."))
        return manifest.get("split_sha256"), entries
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None, []  # not a readable split folder: write_split decides what to do with it
