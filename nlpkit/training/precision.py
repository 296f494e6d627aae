"""Mixed precision: bf16 autocast where the device computes bf16 natively, fp32 elsewhere.

Weights and optimizer state stay fp32 either way; only the forward/backward matmuls run in bf16.
"""

from __future__ import annotations

import functools
from contextlib import nullcontext
from typing import TYPE_CHECKING

from nlpkit.errors import ConfigError

if TYPE_CHECKING:
    import torch


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True on CPUs with bf16 dot-product instructions (AVX512-BF16, AMX), where oneDNN runs bf16
    matmuls about twice as fast as fp32 (docs/benchmarks.md)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            flags = next((line for line in fh if line.startswith("flags")), "")
    except OSError:
        return False
    return " avx512_bf16" in flags or " amx_bf16" in flags


def autocast_for(precision: str, device: "torch.device"):
    """(autocast context, ``"bf16"`` | ``"fp32"``) for ``precision`` (auto, bf16, fp32) on ``device``.

    Raises
    ------
    ConfigError
        ``precision="bf16"`` on a device without native bf16.
    """
    import torch

    native = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_native_bf16()
    if precision == "bf16" and not native:
        raise ConfigError(f"--precision bf16: this {device.type.upper()} has no native bf16 support; use --precision fp32 or auto.")
    if precision == "fp32" or not native:
        return nullcontext(), "fp32"
    return torch.autocast(device.type, dtype=torch.bfloat16), "bf16"
