"""Text normalisation, tokenisation and word counting shared by the baselines (TF-IDF, fastText,
word2vec), the dataset layer (``describe``) and pretraining (corpus statistics). Pure functions.

Follows the preprocessing of the fastText text-classification scripts (Joulin et al. 2016,
``classification-example.sh``): lower case, punctuation split off as separate tokens, whitespace
collapsed. Two rules make it hold beyond English:

* Words keep their combining marks. Python's ``re`` does not count marks (Unicode category M) as
  word characters, so ``\\w+`` cuts Hindi "नमस्ते" into "नमस" and "त", and Thai or Tamil words
  likewise; the ``regex`` module's ``\\w`` includes them.
* Scripts written without spaces between words (Chinese, Japanese, Thai, Lao, Khmer, Myanmar) have
  no word boundary to find, so each of their characters (with its marks) is a token of its own, as
  BERT's tokenizer does for CJK ideographs. Word bigrams then become character bigrams, the usual
  strong baseline for Chinese and Japanese text classification.

Models record the rule they were fitted with (``TEXT_RULE``); models saved before these two rules
existed reload with ``LEGACY_TEXT_RULE``, Python's ``re`` on every text, so that they see new texts
as they saw their training texts.
"""

from __future__ import annotations

import re
from typing import Iterable

import regex

# Scripts written without spaces; U+30FC / U+FF70 (the katakana length mark) belong to no script.
_UNSPACED = r"\p{Han}\p{Hiragana}\p{Katakana}\u30fc\uff70\p{Thai}\p{Lao}\p{Khmer}\p{Myanmar}"
# one character of an unspaced script with its combining marks (punctuation in those scripts excluded)
_UNSPACED_CHAR = rf"(?=\w)[{_UNSPACED}]\p{{M}}*"
_PUNCT_OR_CHAR = regex.compile(rf"([^\w\s]|{_UNSPACED_CHAR})")
_SPACES = regex.compile(r"\s+")
_WORD = regex.compile(rf"{_UNSPACED_CHAR}|[^\W{_UNSPACED}]+")
# TF-IDF terms: as scikit-learn's default token pattern, words of two or more characters, plus
# every character of an unspaced script
_TERM = regex.compile(rf"{_UNSPACED_CHAR}|[^\W{_UNSPACED}]{{2,}}")
# The same rules for ASCII text, where Python's re gives the same tokens without testing Unicode
# properties (faster; the regex path is taken only by texts with a non-ASCII character).
_ASCII_PUNCT = re.compile(r"([^\w\s])")
_ASCII_SPACES = re.compile(r"\s+")
_ASCII_WORD = re.compile(r"\w+")
_ASCII_TERM = re.compile(r"\b\w\w+\b")

TEXT_RULE = "unicode"
LEGACY_TEXT_RULE = "re"
TEXT_RULES = (TEXT_RULE, LEGACY_TEXT_RULE)


def saved_text_rule(rule: str | None, where) -> str:
    """The text rule a saved model records (``None``: saved before rules were recorded, so
    ``LEGACY_TEXT_RULE``); an unknown one is an error naming ``where`` (the file)."""
    from nlpkit.errors import NlpkitError

    rule = LEGACY_TEXT_RULE if rule is None else rule
    if rule not in TEXT_RULES:
        raise NlpkitError(f"{where}: unknown text_rule {rule!r} (known: {', '.join(TEXT_RULES)}); saved by a "
                          "newer nlpkit? Upgrade, or re-run the experiment.")
    return rule


def normalize(text: str, rule: str = TEXT_RULE) -> str:
    """Lower-case ``text``, put spaces around punctuation and around each character of a script
    written without spaces, collapse whitespace (newlines included).

    The result never contains a newline, which fastText needs (one example per line). ``rule``:
    ``LEGACY_TEXT_RULE`` applies Python's ``re`` to every text, as nlpkit did before.
    """
    text = str(text).lower()
    if rule == LEGACY_TEXT_RULE or text.isascii():
        return _ASCII_SPACES.sub(" ", _ASCII_PUNCT.sub(r" \1 ", text)).strip()
    return _SPACES.sub(" ", _PUNCT_OR_CHAR.sub(r" \1 ", text)).strip()


def tokenize(text: str, rule: str = TEXT_RULE) -> list[str]:
    """Word tokens of ``text``: lower-cased runs of letters/digits (with their combining marks),
    single characters of unspaced scripts; punctuation dropped. ``rule`` as in :func:`normalize`."""
    text = str(text).lower()
    return (_ASCII_WORD if rule == LEGACY_TEXT_RULE or text.isascii() else _WORD).findall(text)


def tokenize_all(texts: Iterable[str], rule: str = TEXT_RULE) -> list[list[str]]:
    """:func:`tokenize` over many texts."""
    return [tokenize(t, rule) for t in texts]


_UNSPACED_RUN = regex.compile(rf"{_UNSPACED_CHAR}")


def count_words(text: str) -> int:
    """Words of ``text`` as a person would count them: runs between spaces, except that each
    character of a script written without spaces is one (as the baselines tokenise it), so a
    Chinese sentence counts its characters rather than 1."""
    text = str(text)
    if text.isascii():
        return len(text.split())
    n_unspaced = len(_UNSPACED_RUN.findall(text))
    if not n_unspaced:
        return len(text.split())
    # the runs left between those characters count when they hold a word character ("。" does not)
    return n_unspaced + sum(1 for run in _UNSPACED_RUN.sub(" ", text).split() if _WORD.search(run))


def tfidf_terms(text: str) -> list[str]:
    """The TF-IDF vectoriser's tokenizer (``text`` is already lower-cased by it): words of two or
    more characters, as scikit-learn's default ``token_pattern``, with their combining marks, and
    single characters of unspaced scripts."""
    return (_ASCII_TERM if text.isascii() else _TERM).findall(text)
