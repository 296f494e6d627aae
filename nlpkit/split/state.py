"""The bookkeeping of one stratification run, and the order-2 objective it keeps current."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from nlpkit.split.matrix import gather_rows, lexsort

# Batches up to this many documents are placed one by one in plain Python (cheaper than the
# vectorised path's fixed cost).
_SMALL_BATCH = 8


class State:
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
        cols, owner = gather_rows(self.r_indptr, self.r_indices, docs)
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
        part; their labels are balanced afterwards by ``rebalance_labels``). Ties go to the part
        with the most free places (Sechidis), then to a random part.

        Keys of slot ``t`` of part ``j`` (its ``t``-th document from this batch; the greedy takes
        the ``k`` smallest): ``(c_j + t) / quota_j`` for a label, ``c_j + t - total * share_j``
        for a pair. (Batches up to ``_SMALL_BATCH`` labels use ``(2 c_j + t) / quota_j``, with
        ``c_j`` taken at the start of the batch: kept so that a seed gives the same order-1 split
        in every nlpkit version.)
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
        take = lexsort((tie[j], -(self.left[j] - t), key1))[:k]
        return np.sort(j[take], kind="stable")

    def apportion_largest(self, k: int) -> np.ndarray:
        """Parts for ``k`` documents that each want the largest part with free places (ties:
        the most free places, then a random part): ``apportion`` for ``k`` pairs of one
        document each, in one go."""
        tie = self.rng.random(self.p)
        slots = np.minimum(self.left, k)
        j = np.repeat(np.arange(self.p), slots)
        t = np.arange(j.size) - np.repeat(np.cumsum(slots) - slots, slots)
        take = lexsort((tie[j], -(self.left[j] - t), -self.share[j]))[:k]
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
        cols, owner = gather_rows(self.r_indptr, self.r_indices, docs)
        cost = self.move_cost(cols, src[owner], dst[owner])
        return np.bincount(owner, weights=cost, minlength=docs.size)

    def move(self, doc: int, old: int, new: int) -> None:
        """Move one assigned document to another part, keeping the counts current."""
        cols = self.r_indices[self.r_indptr[doc] : self.r_indptr[doc + 1]]
        self.count[cols, old] -= 1
        self.count[cols, new] += 1
        self.part[doc] = new
