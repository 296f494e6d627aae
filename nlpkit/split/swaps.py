"""Size-keeping swaps after the greedy pass of iterative stratification.

Three finishing passes over a :class:`~nlpkit.split.state.State`, each exchanging two documents
between two parts so that no part's size changes: :func:`repair_presence` (every label that can be
in every part is), :func:`rebalance_labels` (order-1 balance, one label at a time) and, at order 2,
:func:`refine_swaps` (lower ``LPD + LD_WEIGHT * LD``).
"""

from __future__ import annotations

import numpy as np

from nlpkit.split.matrix import gather_rows
from nlpkit.split.state import State

REPAIR_TRIES = 8  # order 2: documents tried per hole in repair_presence
_REFINE_ROUNDS = 30  # at most this many rounds of swaps in refine_swaps (two parts; fewer with more) ...
_REFINE_MIN_GAIN = 1e-3  # ... which stops after a round that lowers its objective by less than this share


def repair_presence(st: State, n_labels: int, col_rank: np.ndarray, by_cost: bool = False,
                     n_parts: int | None = None) -> int:
    """Make every label with at least as many documents as parts present in every part.

    The main pass (relative demand) leaves few such holes, but it can: rarer labels' batches may
    already have put all of a label's documents into some parts. Each hole (label ``l`` missing
    from part ``j``), rarest label first, is filled by a swap that keeps every part's size: a
    document with ``l`` moves to ``j`` from a part holding at least two of ``l``, and a document
    of ``j`` (preferably without labels, else with the fewest) moves back; neither move may open
    a new hole. Returns the number of swaps. (Repair after the fact rather than seeding every
    part with every label up front, which costs LD: docs/benchmarks.md, `nlpkit split`.)

    At order 2 (``by_cost``) both documents are instead the ones whose move costs the objective
    least (``State.doc_move_cost``), and presence is asked of the first ``n_parts`` parts only:
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
        cols, owner = gather_rows(st.r_indptr, st.r_indices, docs)
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
        # order 1 tries the first candidate only (its splits stay as they are); order 2 tries a few, and
        # lets the document coming in cover the labels of the one going out (a small part whose
        # every document holds some label alone can then still take a swap)
        for x in cand[: REPAIR_TRIES if by_cost else 1].tolist():
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


def rebalance_labels(st: State, n_labels: int, seed: int) -> int:
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
                    cols, owner = gather_rows(st.r_indptr, st.r_indices, np.array([x for x, _ in found]))
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


def refine_swaps(st: State, n_labels: int, seed: int, n_parts: int) -> int:
    """Order 2: lower ``LPD + LD_WEIGHT * LD`` by swaps of two documents between two parts.

    A swap exchanges ``x = K + {l}`` in part ``a`` with ``z = K + {l'}`` in part ``b`` (``l'``
    may be nothing): label sets that differ in one label each, matched through a random 64-bit
    hash per label summed over a document's labels minus one (as in ``rebalance_labels``).
    Such a swap changes only ``l``, ``l'`` and their pairs with ``K``, so its cost is the sum of
    one cost per (document, label) *entry* -- the strata of that label in that document -- all
    computed at once from per-stratum move costs (``State.move_cost``). Within each ``K`` the
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
                swaps += _refine_round(st, a, b, ent, idx, must=must, n_parts=n_parts)
        if st.objective() > (1 - _REFINE_MIN_GAIN) * before:
            break
    return swaps


class _Entries:
    """The swap candidates of ``refine_swaps``: one row per (document, label or none), its
    strata in ``cols[ptr[i] : ptr[i + 1]]`` (CSR-like)."""

    def __init__(self, doc: np.ndarray, lab: np.ndarray, key: np.ndarray, cols: np.ndarray, ptr: np.ndarray):
        self.doc, self.lab, self.key, self.cols, self.ptr = doc, lab, key, cols, ptr
        self.group = np.zeros(doc.size, np.int64)

    def keep(self, mask: np.ndarray, group: np.ndarray) -> None:
        """Keep the entries in ``mask`` (with their strata), each with its key's group number."""
        idx = np.flatnonzero(mask)
        lens = np.diff(self.ptr)[idx]
        self.cols, _ = gather_rows(self.ptr, self.cols, idx)
        self.ptr = np.append(0, np.cumsum(lens))
        self.doc, self.lab, self.key, self.group = self.doc[idx], self.lab[idx], self.key[idx], group[idx]


def _refine_round(st: State, a: int, b: int, ent: _Entries, idx: np.ndarray, *, must: np.ndarray,
                  n_parts: int) -> int:
    """One round of ``refine_swaps`` between parts ``a`` and ``b`` over entries ``idx``;
    returns the swaps made."""
    if idx.size == 0:
        return 0
    # the cost of moving one document of each stratum a -> b (row 0) and b -> a (row 1)
    every = np.arange(st.m)
    col_cost = np.stack([st.move_cost(every, np.full(st.m, a), np.full(st.m, b)),
                         st.move_cost(every, np.full(st.m, b), np.full(st.m, a))])
    now = st.part[ent.doc[idx]]  # idx was taken at the start of the round: some have moved since
    side = np.where(now == a, 0, np.where(now == b, 1, -1))
    cols, owner = gather_rows(ent.ptr, ent.cols, idx)
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
