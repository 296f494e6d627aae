"""Domain pretraining: a WordPiece tokenizer and a BERT-style encoder trained from scratch with MLM.

``from nlpkit.pretrain import pretrain, PretrainConfig``. :mod:`.config` holds the options,
:mod:`.corpus` streams the text, :mod:`.store` tokenises it once into memory-mapped shards,
:mod:`.packing` cuts them into blocks, :mod:`.train` runs the loop, and :mod:`.output` describes
and guards the output folder. The tokenizer and the encoder are built by
:mod:`nlpkit.hf.tokenizer` and :mod:`nlpkit.hf.architecture`, the optimizer, schedule, precision and
process group come from :mod:`nlpkit.training`. ``pretrain`` and ``PretrainResult`` import torch
when first used; :mod:`.corpus` and :mod:`.store` do not (the store's worker processes start light).
"""

from nlpkit.pretrain.config import PRESETS, PretrainConfig

__all__ = ["PRESETS", "PretrainConfig", "PretrainResult", "pretrain"]


def __getattr__(name: str):
    if name in ("pretrain", "PretrainResult"):
        from nlpkit.pretrain import train

        return getattr(train, name)
    raise AttributeError(f"module 'nlpkit.pretrain' has no attribute {name!r}")
