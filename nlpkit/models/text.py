"""Text normalisation and tokenisation shared by the fastText and word2vec baselines.

Follows the preprocessing of the fastText text-classification scripts (Joulin et al. 2016,
``classification-example.sh``): lower case, punctuation split off as separate tokens, whitespace
collapsed. Pure functions, no heavy imports.
"""

from __future__ import annotations

import re
from typing import Iterable

_PUNCT = re.compile(r"([^\w\s])", flags=re.UNICODE)
_SPACES = re.compile(r"\s+", flags=re.UNICODE)
_WORD = re.compile(r"\w+", flags=re.UNICODE)


def normalize(text: str) -> str:
    """Lower-case ``text``, put spaces around punctuation, collapse whitespace (newlines included).

    The result never contains a newline, which fastText needs (one example per line).
    """
    text = _PUNCT.sub(r" \1 ", str(text).lower())
    return _SPACES.sub(" ", text).strip()


def tokenize(text: str) -> list[str]:
    """Word tokens of ``text``: lower-cased runs of letters/digits; punctuation dropped."""
    return _WORD.findall(str(text).lower())


def tokenize_all(texts: Iterable[str]) -> list[list[str]]:
    """:func:`tokenize` over many texts."""
    return [tokenize(t) for t in texts]
