"""The methods nlpkit's split is compared with: a seeded random split and scikit-multilearn's."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nlpkit.seeds import check_seed
from nlpkit.split.matrix import as_csr
from nlpkit.split.sizes import Size, resolve_sizes


def random_split(y, sizes: Sequence[Size], *, seed: int = 0) -> np.ndarray:
    """A seeded random split with the same exact part sizes (the baseline of the measures).

    ``y`` may also be an int, the number of documents.
    """
    seed = check_seed(seed)
    n = int(y) if isinstance(y, (int, np.integer)) else as_csr(y).shape[0]
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
    y = as_csr(y)
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
