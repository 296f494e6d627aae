"""Tokenizers for masked-language pretraining: train a domain WordPiece vocabulary (saved as a BERT
fast tokenizer), load a tokenizer folder safely, encode whole documents, and measure fertility.

Below the models and the commands: nothing here imports from :mod:`nlpkit.pretrain` or
:mod:`nlpkit.models`. transformers and tokenizers are imported inside functions.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from nlpkit.errors import ConfigError, DataError
from nlpkit.hf.checkpoint import check_tokenizer_files, refuse_custom_code

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")  # ids 0..4 in this order

# A WordPiece vocabulary learnt from fewer words than this many per entry is mostly whole rare
# words seen once or twice: a sign the corpus is too small for the requested size.
MIN_WORDS_PER_VOCAB_ENTRY = 10


def check_vocab_fits(texts: Sequence[str], vocab_size: int, *, n_words: int | None = None) -> None:
    """Refuse a vocabulary larger than the corpus can support (DataError naming the fix).

    Words are counted by :func:`nlpkit.text.count_words`: each character of Chinese or
    Japanese is one, as BERT's pre-tokenizer makes it, not each clause between spaces
    (``n_words``: the count, when the caller has it)."""
    from nlpkit.text import count_words

    if n_words is None:
        n_words = sum(count_words(t) for t in texts)
    needed = MIN_WORDS_PER_VOCAB_ENTRY * vocab_size
    if n_words < needed:
        fits = n_words // MIN_WORDS_PER_VOCAB_ENTRY
        fix = (f"use --vocab-size {fits} or less, or add text" if fits >= 64 else
               f"add text (the smallest --vocab-size, 64, needs {64 * MIN_WORDS_PER_VOCAB_ENTRY} words)")
        raise DataError(
            f"corpus too small for --vocab-size {vocab_size}: {n_words} words, need at least {needed} "
            f"({MIN_WORDS_PER_VOCAB_ENTRY} per vocabulary entry); {fix}."
        )


def train_wordpiece(texts: Sequence[str], vocab_size: int, *, lowercase: bool = True,
                    strip_accents: bool | None = None, min_frequency: int = 2):
    """Train a WordPiece vocabulary on ``texts`` and wrap it as ``transformers.BertTokenizerFast``.

    Special tokens get ids 0..4: [PAD] [UNK] [CLS] [SEP] [MASK].  Normalisation and
    pre-tokenisation are BERT's (``BertNormalizer``/``BertPreTokenizer``), so the saved folder
    loads with ``AutoTokenizer.from_pretrained`` and behaves exactly as during training.
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertTokenizerFast

    n_words, chars = _survey(texts)  # one reading of a streamed corpus for both, not two
    check_vocab_fits(texts, vocab_size, n_words=n_words)
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=strip_accents, lowercase=lowercase)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    # Printable ASCII is always in the alphabet: a "!" absent from a small corpus must not
    # become [UNK] later.
    alphabet = [chr(c) for c in range(33, 127)]
    if lowercase:
        alphabet = sorted(set(a.lower() for a in alphabet))
    # The trainer numbers a word-continuing character ("##e") when it first meets it, walking the
    # words in hash-map order, which changes from process to process; merges of equal frequency are
    # then taken in the order of those numbers, so two trainings on one corpus could end with
    # different pieces. Registering every "##c" up front, in sorted order, fixes the numbers.
    continuations = _continuation_pieces(texts, tok.normalizer, tok.pre_tokenizer, chars=chars)
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                        special_tokens=list(SPECIAL_TOKENS) + continuations,
                                        initial_alphabet=alphabet, show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    learnt = tok.get_vocab()
    # WordPiece matching does not depend on ids: number the pieces in sorted order, specials
    # first, so that the ids do not depend on the trainer's internals either.
    rest = sorted(p for p in learnt if p not in SPECIAL_TOKENS)
    vocab = {p: i for i, p in enumerate(list(SPECIAL_TOKENS) + rest)}
    if len(vocab) < 0.5 * vocab_size:
        raise DataError(
            f"corpus too small for --vocab-size {vocab_size}: only {len(vocab)} pieces occur at least "
            f"{min_frequency} times; use --vocab-size {len(vocab)} or less, or add text."
        )
    return BertTokenizerFast(vocab=vocab, do_lower_case=lowercase, strip_accents=strip_accents,
                             model_max_length=1_000_000_000)


def _survey(texts: Sequence[str]) -> tuple[int, set[str]]:
    """The words (as :func:`check_vocab_fits` counts them) and the distinct characters of ``texts``."""
    from nlpkit.text import count_words

    n_words, chars = 0, set()
    for text in texts:
        n_words += count_words(text)
        chars.update(text)
    return n_words, chars


def _continuation_pieces(texts: Sequence[str], normalizer, pre_tokenizer, prefix: str = "##", *,
                         chars: set[str] | None = None) -> list[str]:
    """``prefix + c``, sorted, for every character ``c`` of the normalised ``texts`` that can
    continue a word (the pre-tokeniser keeps it inside "a{c}a"; punctuation it splits off cannot).

    The normaliser (BERT's: cleaning, lower-casing, accent stripping) works character by character,
    so it is applied to the distinct characters only: one pass over the corpus in C, not a Python
    loop over every word (``chars``: the distinct characters, when the caller has them).
    """
    raw = chars if chars is not None else set()
    if chars is None:
        for text in texts:
            raw.update(text)
    normalised = {c for r in raw for c in normalizer.normalize_str(r) if not c.isspace()}
    inner = [c for c in normalised if [w for w, _ in pre_tokenizer.pre_tokenize_str(f"a{c}a")] == [f"a{c}a"]]
    return [prefix + c for c in sorted(inner)]


def load_tokenizer(path: str | Path, what: str = "the tokenizer folder"):
    """A tokenizer folder (e.g. --compare-tokenizer DIR) via AutoTokenizer, with a one-line error.

    ``what`` names the folder in the refusal of one that asks for its own Python code (see
    :func:`nlpkit.hf.checkpoint.refuse_custom_code`)."""
    from transformers import AutoTokenizer

    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"tokenizer folder not found: {path}; pass a folder with tokenizer.json / vocab.txt.")
    check_tokenizer_files(path)
    # AutoTokenizer reads config.json as well as tokenizer_config.json: refuse_custom_code checks both
    refuse_custom_code(path, what)
    try:
        return AutoTokenizer.from_pretrained(str(path), trust_remote_code=False)
    except Exception as exc:  # noqa: BLE001 - any loader failure is a user-facing bad folder
        raise ConfigError(f"cannot load a tokenizer from {path} ({type(exc).__name__}: {str(exc)[:120]}); "
                          "pass a Hugging Face tokenizer folder.") from None


def _plain_backend(tokenizer):
    """A copy of the fast tokenizer's backend without truncation/padding: a tokenizer saved with
    truncation at 512 would otherwise silently drop the tail of long documents."""
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    return backend


def encode_docs(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids of each whole document, without special tokens (batch encoding in Rust)."""
    return [enc.ids for enc in _plain_backend(tokenizer).encode_batch(list(texts), add_special_tokens=False)]


def fertility(tokenizer, texts: Sequence[str]) -> dict:
    """Subword tokens per word, share of words split into several pieces, share of [UNK] tokens.

    Words are the tokenizer's own pre-tokens (BERT: whitespace and punctuation), so the figures
    of two tokenizers with the same pre-tokenizer compare like with like.
    """
    backend = _plain_backend(tokenizer)
    unk_id = tokenizer.unk_token_id
    n_words = n_tokens = n_split = n_unk = 0
    encs = backend.encode_batch(list(texts), add_special_tokens=False)
    for enc in encs:
        word_ids = [w for w in enc.word_ids if w is not None]
        if not word_ids:
            continue
        counts = Counter(word_ids)
        n_words += len(counts)
        n_tokens += len(word_ids)
        n_split += sum(1 for c in counts.values() if c > 1)
        n_unk += sum(1 for t in enc.ids if t == unk_id)
    return {
        "words": n_words,
        "tokens": n_tokens,
        "tokens_per_word": n_tokens / n_words if n_words else float("nan"),
        "share_words_split": n_split / n_words if n_words else float("nan"),
        "share_unk": n_unk / n_tokens if n_tokens else float("nan"),
        "vocab_size": len(tokenizer),
    }


def unigram_entropy(docs_ids: Sequence[Sequence[int]]) -> float:
    """Entropy (nats) of the token unigram distribution over ``docs_ids``: the loss of a model
    that ignores context, the bar an MLM must clear."""
    counts = Counter()
    for ids in docs_ids:
        counts.update(ids)
    c = np.array(list(counts.values()), dtype=np.float64)
    if not len(c):
        return float("nan")
    p = c / c.sum()
    return float(-(p * np.log(p)).sum())
