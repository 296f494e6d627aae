"""AdamW and its parameter groups: no weight decay on biases and norms, layer-wise lr decay, a
separate lr for a new classification head."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

_LAYER_RE = re.compile(r"\.layers?\.(\d+)\.")


def layer_id(name: str, n_layers: int) -> int:
    """Depth of a parameter: 0 embeddings, i+1 encoder layer i, n_layers+1 everything on top."""
    m = _LAYER_RE.search(name)
    if m:
        return int(m.group(1)) + 1
    if "embed" in name:
        return 0
    return n_layers + 1


def no_weight_decay(name: str, param) -> bool:
    """Biases, norm weights and every other vector (nanoGPT, BERT: decay applies to matrices)."""
    return param.ndim < 2 or "norm" in name.lower() or name.endswith(".bias")


def param_groups(model, *, lr: float, weight_decay: float, layer_decay: float = 1.0,
                 head_lr: float | None = None) -> list[dict]:
    """AdamW parameter groups of ``model`` (trainable parameters, a tied one once).

    Parameters
    ----------
    model : a Hugging Face model (``config.num_hidden_layers`` gives the depth for layer decay).
    lr : the peak learning rate of the top layer.
    weight_decay : for matrices; 0 for what :func:`no_weight_decay` names.
    layer_decay : ``lr * layer_decay ** (depth from the top)`` (Clark et al. 2020, ELECTRA); 1: none.
    head_lr : own lr for the parameters above the encoder (the new head), pooler and norms excepted.

    Returns
    -------
    One group per (lr, decay or not), in the order their first parameter appears; each with
    ``params``, ``lr`` and ``weight_decay``.
    """
    n_layers = int(getattr(model.config, "num_hidden_layers", 0) or 0)
    groups: dict[tuple[int, bool], dict] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        depth = layer_id(name, n_layers)
        no_decay = no_weight_decay(name, p)
        is_head = depth == n_layers + 1 and not ("pooler" in name or "norm" in name.lower())
        if is_head and head_lr is not None:
            group_lr = head_lr
        else:
            group_lr = lr * layer_decay ** (n_layers + 1 - depth)
        key = (round(group_lr * 1e12), no_decay)
        if key not in groups:
            groups[key] = {"params": [], "lr": group_lr, "weight_decay": 0.0 if no_decay else weight_decay}
        groups[key]["params"].append(p)
    return list(groups.values())


def adamw(groups: list[dict], *, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
          foreach: bool | None = None) -> "torch.optim.Optimizer":
    """AdamW, fused (one kernel per step, CPU and CUDA in torch >= 2.4) where this torch supports it
    on the parameters' device; else with ``foreach`` (None: torch's default)."""
    import torch

    try:
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps, foreach=foreach)
