"""Packed training data: documents concatenated into fixed-length blocks, and the seeded order in
which the ranks of a run read them.

:func:`pack` turns token ids into blocks with no padding; :class:`StoreBlocks` cuts the same
blocks from a token store's memory-mapped stream, on demand; :class:`BlockSampler` hands out
micro-batches with an explicit position (epoch, cursor), which is all a checkpoint needs to
continue the data stream exactly; its order is a :class:`SeededPermutation`, computed per index,
so no table of blocks grows with the corpus.
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


class StoreBlocks:
    """The blocks :func:`pack` would make from a token store part, read from its memmaps when indexed.

    The store's stream already has [SEP] after each document, so block ``b`` is [CLS] followed by
    stream tokens ``[b*(L-1), (b+1)*(L-1))``: the block index is arithmetic, no list of documents
    or tokens is ever built. ``blocks[idx]`` (an array of block numbers or a slice) is an int64
    tensor of shape (len(idx), max_length).
    """

    def __init__(self, part, max_length: int, ids_of: TokenIds = TokenIds()):
        self.part, self.max_length, self.cls = part, max_length, ids_of.cls
        self.body = max_length - 1
        self.n = part.stream_tokens // self.body

    def __len__(self) -> int:
        return self.n

    @property
    def shape(self) -> tuple[int, int]:
        return (self.n, self.max_length)

    def __getitem__(self, idx) -> torch.Tensor:
        rows = np.arange(self.n)[idx] if isinstance(idx, slice) else np.atleast_1d(np.asarray(idx, dtype=np.int64))
        if len(rows) and (rows.min() < 0 or rows.max() >= self.n):
            raise IndexError(f"block index out of range (0..{self.n - 1})")
        out = np.empty((len(rows), self.max_length), dtype=np.int64)
        out[:, 0] = self.cls
        for r, b in enumerate(rows):
            out[r, 1:] = self.part.read(int(b) * self.body, (int(b) + 1) * self.body)
        return torch.from_numpy(out)


class SeededPermutation:
    """A seeded pseudo-random bijection of ``range(n)`` evaluated index by index, with no table.

    A shuffled table of block numbers costs 8 bytes a block per rank: 1.25 GB for 20 billion tokens
    at length 128. Instead, a balanced Feistel network (Luby & Rackoff 1988: four rounds of a keyed
    mixing function make a pseudo-random permutation) permutes the ``2**bits >= n`` values, and values
    that land at ``n`` or above are sent through it again until they fall inside ("cycle walking",
    Black & Rogaway 2002), which keeps it a bijection of ``range(n)``; ``2**bits < 4n``, so a few
    passes at most on average.
    """

    ROUNDS = 4

    def __init__(self, n: int, seed):
        if n < 1:
            raise ValueError(f"a permutation of {n} values")
        self.n = int(n)
        bits = max(2, (self.n - 1).bit_length())
        self.half = (bits + 1) // 2
        self.mask = np.uint64((1 << self.half) - 1)
        self.keys = np.random.default_rng(seed).integers(0, 2**63, size=self.ROUNDS, dtype=np.uint64)

    def _round_fn(self, r: np.ndarray, key: np.uint64) -> np.ndarray:
        # splitmix64's finaliser (Steele et al. 2014): every input bit reaches every output bit
        z = r ^ key
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return (z ^ (z >> np.uint64(31))) & self.mask

    def _feistel(self, x: np.ndarray) -> np.ndarray:
        half = np.uint64(self.half)
        left, right = x >> half, x & self.mask
        for key in self.keys:
            left, right = right, left ^ self._round_fn(right, key)
        return (left << half) | right

    def __getitem__(self, positions) -> np.ndarray:
        """The values at ``positions`` (an int, array or slice of ``range(n)``), as int64."""
        if isinstance(positions, slice):
            r = range(self.n)[positions]
            pos = np.arange(r.start, r.stop, r.step)
        else:
            pos = np.asarray(positions)
        with np.errstate(over="ignore"):  # the mixing multiplies modulo 2**64 on purpose
            out = self._feistel(pos.astype(np.uint64))
            outside = out >= self.n
            while outside.any():
                out[outside] = self._feistel(out[outside])
                outside = out >= self.n
        return out.astype(np.int64)

    def __len__(self) -> int:
        return self.n


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
            self._perm = SeededPermutation(self.n, [self.seed, self.epoch])
            self._perm_epoch = self.epoch
        start = self.cursor + self.dist.rank * self.batch
        idx = self._perm[start:start + self.batch]
        self.cursor += self.per_global_micro
        return idx
