"""Cost with context: where each run trained and predicted, prediction speed re-measured on the
report's machine (``--measure-cost``), and money from hourly prices (``--price-per-hour``).

A docs/s figure means little without the device: a GPU-trained transformer and a CPU baseline side
by side compare machines as much as models. Each run records its machine (``run.json`` "machine",
:func:`nlpkit.runs.machine_info`); re-measuring puts every model on one machine.
"""

from __future__ import annotations

import time
from typing import Any, Sequence

from nlpkit.errors import ConfigError

MEASURE_DOCS = 500      # test documents timed per model at the default batch
MEASURE_DOCS_BATCH1 = 50  # ... and one by one


def device_label(machine: dict | None) -> str | None:
    """"GPU NVIDIA H100 80GB HBM3" / "CPU ×2" (logical cores) from a run's recorded machine (None when
    not recorded); the CPU model is in report.json."""
    if not isinstance(machine, dict) or not machine:
        return None
    if machine.get("gpu"):
        return f"GPU {machine['gpu']}"
    cores = machine.get("cpu_cores")
    return f"CPU ×{cores}" if cores else "CPU"


def parse_prices(text: str | None) -> dict[str, float] | None:
    """``"CPU=0.10,GPU=2.50"`` (currency units per hour) as ``{"cpu": 0.1, "gpu": 2.5}``."""
    if text is None:
        return None
    prices: dict[str, float] = {}
    for part in str(text).split(","):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep or key not in ("cpu", "gpu"):
            raise ConfigError(f"--price-per-hour: {part.strip()!r} is not DEVICE=PRICE with DEVICE cpu or gpu; "
                              "write e.g. --price-per-hour CPU=0.10,GPU=2.50.")
        try:
            price = float(value)
        except ValueError:
            raise ConfigError(f"--price-per-hour: {value.strip()!r} is not a price (a number per hour), "
                              "e.g. CPU=0.10.") from None
        if not price >= 0 or price == float("inf"):
            raise ConfigError(f"--price-per-hour: {key.upper()}={value.strip()} must be a number >= 0.")
        if key in prices:
            raise ConfigError(f"--price-per-hour gives {key.upper()} twice; give each device once.")
        prices[key] = price
    return prices


def measure_prediction(run, texts: Sequence[str]) -> dict[str, Any]:
    """The run's saved model, loaded and timed on ``texts`` on this machine: docs/s over up to
    :data:`MEASURE_DOCS` documents at the model's default batch, over :data:`MEASURE_DOCS_BATCH1`
    one at a time, and in calls of 32 (after one warm-up call)."""
    from nlpkit.experiment import batched_docs_per_s, one_by_one_docs_per_s
    from nlpkit.models import load_model
    from nlpkit.runs import machine_info

    model = load_model(run.model_dir)
    sample = list(texts)[:MEASURE_DOCS]
    model.predict_proba(sample[:2])  # warm-up: lazy imports, first allocations
    t = time.perf_counter()
    model.predict_proba(sample)
    batch = time.perf_counter() - t
    return {"docs_per_s": len(sample) / batch if batch > 0 else None,
            "docs_per_s_batch1": one_by_one_docs_per_s(model, sample, MEASURE_DOCS_BATCH1),
            "docs_per_s_batch32": batched_docs_per_s(model, sample),
            "docs": len(sample), "machine": machine_info()}


def money(row: dict, prices: dict[str, float], *, predict_device: str | None, train_device: str | None) -> dict:
    """Training cost (fit seconds at the training device's price) and the cost of predicting one
    million documents (at the prediction device's price and the row's docs/s); None where the device's
    price or the figure is missing."""
    def price(device):
        return prices.get(device or "cpu")

    fit, dps = row.get("fit_seconds"), row.get("predict_docs_per_s")
    train_price, predict_price = price(train_device), price(predict_device)
    return {"train": fit / 3600 * train_price if fit and train_price is not None else None,
            "per_million_docs": 1e6 / dps / 3600 * predict_price if dps and predict_price is not None else None}
