"""Domain pretraining: a WordPiece tokenizer and a BERT-style encoder trained from scratch with MLM.

``from nlpkit.pretrain import pretrain, PretrainConfig``. :mod:`.config` holds the options,
:mod:`.corpus` reads the text, :mod:`.packing` cuts it into blocks, :mod:`.train` runs the loop, and
:mod:`.output` describes and guards the output folder. The tokenizer and the encoder are built by
:mod:`nlpkit.hf.tokenizer` and :mod:`nlpkit.hf.architecture`, the optimizer, schedule, precision and
process group come from :mod:`nlpkit.training`. Importing this package imports torch.
"""

from nlpkit.pretrain.config import PRESETS, PretrainConfig
from nlpkit.pretrain.train import PretrainResult, pretrain

__all__ = ["PRESETS", "PretrainConfig", "PretrainResult", "pretrain"]
