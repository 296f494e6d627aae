"""Domain pretraining: a WordPiece tokenizer and a BERT-style encoder trained from scratch with MLM.

``from nlpkit.pretrain import pretrain, PretrainConfig``; see :mod:`nlpkit.pretrain.train` for the
output layout.  Importing this package imports torch.
"""

from nlpkit.pretrain.config import PRESETS, PretrainConfig
from nlpkit.pretrain.train import PretrainResult, pretrain

__all__ = ["PRESETS", "PretrainConfig", "PretrainResult", "pretrain"]
