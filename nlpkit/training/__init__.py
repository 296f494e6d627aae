"""The training toolbox shared by pretraining and fine-tuning: process group, mixed precision,
learning-rate schedule, AdamW parameter groups and RNG state.

Each piece is one small module below both users (:mod:`nlpkit.pretrain`, :mod:`nlpkit.models.transformer`).
torch is imported inside functions, so importing these modules is cheap.
"""
