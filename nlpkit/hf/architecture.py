"""The masked-language encoders nlpkit pretrains (BERT or ModernBERT, Hugging Face classes), BERT's
MLM masking, and the loss on masked positions only.

Below the models and the commands: nothing here imports from :mod:`nlpkit.pretrain` or
:mod:`nlpkit.models`; callers pass the dimensions explicitly. transformers is imported inside functions.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nlpkit.errors import ConfigError

PAD, UNK, CLS, SEP, MASK = range(5)  # the ids of nlpkit.hf.tokenizer.SPECIAL_TOKENS
FINETUNE_DROPOUT = 0.1  # written into the saved config: fine-tuning wants BERT's usual dropout


def build_model(arch: str, *, vocab_size: int, layers: int, hidden: int, heads: int, intermediate: int,
                max_length: int, ids_of: "TokenIds | None" = None):
    """A fresh ``BertForMaskedLM`` (``arch="bert"``) / ``ModernBertForMaskedLM`` (``"modernbert"``)
    with dropout off (Cramming, Geiping & Goldstein 2022: no dropout when each token is seen about
    once) and PyTorch SDPA attention.

    ``max_position_embeddings`` is ``max_length``: nothing caps it at 512. ``ids_of``: the special
    ids of the tokenizer (default nlpkit's own).
    """
    ids_of = ids_of or TokenIds()
    if arch == "bert":
        from transformers import BertConfig, BertForMaskedLM

        mc = BertConfig(
            vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers,
            num_attention_heads=heads, intermediate_size=intermediate,
            max_position_embeddings=max_length, type_vocab_size=2, pad_token_id=ids_of.pad,
            hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        )
        mc._attn_implementation = "sdpa"
        model = BertForMaskedLM(mc)
    else:
        from transformers import ModernBertConfig, ModernBertForMaskedLM

        # ModernBERT's default special ids (50281...) point outside a domain vocabulary and crash
        # the embedding lookup: take them from our tokenizer.
        mc = ModernBertConfig(
            vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers,
            num_attention_heads=heads, intermediate_size=intermediate,
            max_position_embeddings=max_length, pad_token_id=ids_of.pad, bos_token_id=ids_of.cls,
            eos_token_id=ids_of.sep, cls_token_id=ids_of.cls, sep_token_id=ids_of.sep, local_attention=min(128, max_length),
            attention_dropout=0.0, embedding_dropout=0.0, mlp_dropout=0.0,
        )
        mc.mask_token_id = ids_of.mask
        mc._attn_implementation = "sdpa"
        model = ModernBertForMaskedLM(mc)
    return model


def set_finetune_dropout(config, on: bool) -> None:
    """Switch the dropout fields of a saved config between pretraining (0) and fine-tuning values."""
    p = FINETUNE_DROPOUT if on else 0.0
    if config.model_type == "bert":
        config.hidden_dropout_prob = p
        config.attention_probs_dropout_prob = p
    # ModernBERT's own defaults are 0 everywhere (its authors fine-tune without dropout): keep them.


def mlm_loss(model, input_ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on masked positions only, computing the LM head only there.

    The encoder runs on every position, but the prediction head (transform + vocabulary
    projection, the largest matmul of a small model) runs on the ~15% masked ones: gathering the
    hidden states before the decoder is Cramming's sparse prediction (Geiping & Goldstein 2022).
    ``labels`` is -100 where nothing is predicted.  No attention mask: packed blocks have no
    padding, which also lets SDPA take its unmasked fast path.
    """
    if model.config.model_type == "bert":
        hidden = model.bert(input_ids, return_dict=True).last_hidden_state
    else:
        hidden = model.model(input_ids=input_ids).last_hidden_state
    sel = labels.reshape(-1) != -100
    h = hidden.reshape(-1, hidden.shape[-1])[sel]
    logits = model.cls(h) if model.config.model_type == "bert" else model.decoder(model.head(h))
    return F.cross_entropy(logits.float(), labels.reshape(-1)[sel])


class MaskedLMWrapper(torch.nn.Module):
    """``forward(input_ids, labels) -> loss``: one module for DDP / torch.compile to wrap."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, labels):
        return mlm_loss(self.model, input_ids, labels)


@dataclass(frozen=True)
class TokenIds:
    """The token ids packing and masking need: fixed (0-4) for nlpkit's own tokenizer, read from
    the tokenizer for any other (``--tokenizer`` / ``--init-from`` a Hugging Face checkpoint,
    where e.g. BERT's [CLS], [SEP] and [MASK] are 101, 102 and 103)."""

    cls: int = CLS
    sep: int = SEP
    mask: int = MASK
    pad: int = PAD
    special: tuple[int, ...] = (PAD, UNK, CLS, SEP, MASK)

    @classmethod
    def of(cls, tokenizer, where: str = "the tokenizer") -> "TokenIds":
        names = {"cls": "cls_token_id", "sep": "sep_token_id", "mask": "mask_token_id"}
        missing = [attr[:-3] for attr in names.values() if getattr(tokenizer, attr, None) is None]
        if missing:
            raise ConfigError(f"{where} has no {' / '.join(missing)}, so it cannot be used for masked-language "
                              "modelling; use a BERT-style (MLM) tokenizer.")
        pad = getattr(tokenizer, "pad_token_id", None)
        return cls(**{k: int(getattr(tokenizer, attr)) for k, attr in names.items()},
                   pad=int(pad) if pad is not None else PAD,
                   special=tuple(sorted(set(int(i) for i in tokenizer.all_special_ids))))

    @functools.lru_cache(maxsize=4)
    def tables(self, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(bool per vocabulary id: special?, the ids a random replacement is drawn from)."""
        special = torch.zeros(max(vocab_size, max(self.special) + 1), dtype=torch.bool)
        special[list(self.special)] = True
        return special, torch.nonzero(~special[:vocab_size]).flatten()


def mask_tokens(input_ids: torch.Tensor, *, vocab_size: int, mlm_prob: float, generator: torch.Generator,
                word_start: torch.Tensor | None = None, ids_of: TokenIds = TokenIds()) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking (Devlin et al. 2019): choose ``mlm_prob`` of the non-special tokens; of those
    80% become [MASK], 10% a random non-special token, 10% stay.  Returns (inputs, labels with -100 elsewhere).

    With ``word_start`` (bool per vocabulary id: False for ``##`` continuation pieces) whole words
    are chosen together: every piece of a word shares the random draw of its first piece.
    """
    ids = input_ids
    is_special, normal = ids_of.tables(vocab_size)
    special = is_special[ids]
    u = torch.rand(ids.shape, generator=generator)
    if word_start is not None:
        starts = word_start[ids] | special
        pos = torch.arange(ids.shape[1]).expand_as(ids)
        start_pos = torch.cummax(torch.where(starts, pos, torch.zeros_like(pos)), dim=1).values
        u = torch.gather(u, 1, start_pos)
    chosen = (u < mlm_prob) & ~special
    labels = torch.where(chosen, ids, torch.full_like(ids, -100))
    r = torch.rand(ids.shape, generator=generator)
    rand_tok = normal[torch.randint(0, len(normal), ids.shape, generator=generator)]
    inputs = torch.where(chosen & (r < 0.8), torch.full_like(ids, ids_of.mask), ids)
    inputs = torch.where(chosen & (r >= 0.8) & (r < 0.9), rand_tok, inputs)
    return inputs, labels


def word_start_table(tokenizer) -> torch.Tensor:
    """Bool per vocabulary id: True unless the piece continues a word (WordPiece ``##`` prefix)."""
    vocab = tokenizer.get_vocab()
    table = torch.ones(max(vocab.values()) + 1, dtype=torch.bool)
    for piece, i in vocab.items():
        if piece.startswith("##"):
            table[i] = False
    return table

