"""Packed training data: documents concatenated into fixed-length blocks, and the seeded order in
which the ranks of a run read them.

:func:`pack` turns token ids into blocks with no padding; :class:`BlockSampler` hands out
micro-batches with an explicit position (epoch, cursor), which is all a checkpoint needs to
continue the data stream exactly.
"""

from __future__ import annotations

import numpy as np
import torch

from nlpkit.hf.architecture import TokenIds
from nlpkit.training.distributed import DistContext


def pack(docs_ids: list[list[int]], max_length: int, ids_of: TokenIds = TokenIds()) -> torch.Tensor:
    """Concatenate documents with [SEP] after each and cut the stream into blocks of ``max_length``
    starting with [CLS] (run_mlm.py's group_texts): no padding anywhere, the tail is dropped."""
    CLS, SEP = ids_of.cls, ids_of.sep  # noqa: N806
    body = max_length - 1
    total = sum(len(d) + 1 for d in docs_ids)
    stream = np.empty(total, dtype=np.int64)
    pos = 0
    for d in docs_ids:
        stream[pos:pos + len(d)] = d
        stream[pos + len(d)] = SEP
        pos += len(d) + 1
    n = total // body
    blocks = np.empty((n, max_length), dtype=np.int64)
    blocks[:, 0] = CLS
    blocks[:, 1:] = stream[: n * body].reshape(n, body)
    return torch.from_numpy(blocks)


class BlockSampler:
    """Seeded epoch-wise shuffling of packed blocks with an explicit position (epoch, cursor).

    Each call hands out one micro-batch of ``batch`` blocks per rank: rank r takes rows
    ``[r*batch, (r+1)*batch)`` of the next ``batch*world_size`` blocks of the epoch's permutation, so
    ranks never share a block.  The position is all a checkpoint needs to continue exactly.
    """

    def __init__(self, n_blocks: int, batch: int, dist: DistContext, seed: int, epoch: int = 0, cursor: int = 0):
        self.n, self.batch, self.dist, self.seed = n_blocks, batch, dist, seed
        self.epoch, self.cursor = epoch, cursor
        self._perm_epoch, self._perm = None, None

    @property
    def per_global_micro(self) -> int:
        return self.batch * self.dist.world_size

    @property
    def micro_per_epoch(self) -> int:
        return self.n // self.per_global_micro

    def next_indices(self) -> np.ndarray:
        if self.cursor + self.per_global_micro > self.n:
            self.epoch, self.cursor = self.epoch + 1, 0
        if self._perm_epoch != self.epoch:
            self._perm = np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
            self._perm_epoch = self.epoch
        start = self.cursor + self.dist.rank * self.batch
        idx = self._perm[start:start + self.batch]
        self.cursor += self.per_global_micro
        return idx
