"""Capture and restore the Python, numpy and torch (CPU) random states, as plain lists and a tensor,
so that a checkpoint holding them needs no pickle and a resumed run draws what it would have drawn."""

from __future__ import annotations

import random

import numpy as np


def rng_state() -> dict:
    """``{"python": [...], "numpy": [...], "torch": ByteTensor}`` of the current global generators."""
    import torch

    py = random.getstate()
    np_state = np.random.get_state()
    return {
        "python": [py[0], list(py[1]), py[2]],
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "torch": torch.get_rng_state(),
    }


def set_rng_state(state: dict) -> None:
    """Restore the generators from :func:`rng_state` (also after a round trip through a state file)."""
    import torch

    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n[0], np.asarray(n[1], dtype=np.uint32), n[2], n[3], n[4]))
    torch.set_rng_state(state["torch"])
