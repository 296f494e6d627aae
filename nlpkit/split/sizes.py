"""Part sizes: fractions or counts as requested -> exact document counts per part."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import numpy as np

from nlpkit.errors import ConfigError, DataError

Size = Union[int, float]


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
