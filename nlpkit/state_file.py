"""Training state (weights, optimizer, RNG, counters) in one safetensors file, without pickle.

A resume checkpoint is a nested structure of dicts, lists, tuples, numbers, strings and tensors.
The tensors go into a safetensors file as tensors; everything else is JSON in the file's header
(safetensors' string metadata), with each tensor replaced by its key. Reading it back never runs a
pickle, so a checkpoint folder received from someone else cannot execute code (docs/security.md);
``torch.load(weights_only=True)`` would still run a restricted unpickler over it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from nlpkit._io import from_safetensors, full_disk_names, give_ordinary_mode, owned_temp_name
from nlpkit.errors import NlpkitError

FORMAT = "nlpkit-state/1"
_META_KEY = "nlpkit_state"


def _encode(obj: Any, tensors: dict, path: str) -> Any:
    import torch

    if isinstance(obj, torch.Tensor):
        key = f"t{len(tensors)}"
        # safetensors refuses views that share storage; a contiguous copy keeps the values exactly.
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {"__dict__": [[k, _encode(v, tensors, f"{path}.{k}")] for k, v in obj.items()]}
        if all(isinstance(k, int) and not isinstance(k, bool) for k in obj):  # optimizer state: param index
            return {"__intdict__": [[k, _encode(v, tensors, f"{path}.{k}")] for k, v in obj.items()]}
        raise TypeError(f"{path}: dict keys must be all str or all int")
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, tensors, f"{path}[{i}]") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, tensors, f"{path}[{i}]") for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, str)):
        return obj
    if isinstance(obj, float):
        # JSON has no inf/nan; repr round-trips every finite float exactly.
        return obj if obj == obj and abs(obj) != float("inf") else {"__float__": repr(obj)}
    raise TypeError(f"{path}: cannot store a {type(obj).__name__} in a state file")


def _decode(obj: Any, tensors: dict) -> Any:
    if isinstance(obj, list):
        return [_decode(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if len(obj) != 1:
        raise ValueError("malformed entry")
    (tag, value), = obj.items()
    if tag == "__tensor__":
        return tensors[value]
    if tag == "__dict__":
        return {str(k): _decode(v, tensors) for k, v in value}
    if tag == "__intdict__":
        return {int(k): _decode(v, tensors) for k, v in value}
    if tag == "__tuple__":
        return tuple(_decode(v, tensors) for v in value)
    if tag == "__float__":
        return float(value)
    raise ValueError(f"unknown tag {tag!r}")


def save_state(path: str | os.PathLike, state: Any) -> None:
    """Write ``state`` to ``path`` (a ``.safetensors`` file) through a temporary sibling."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors: dict = {}
    header = json.dumps({"format": FORMAT, "state": _encode(state, tensors, "state")}, allow_nan=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = owned_temp_name(path)
    try:
        try:
            save_file(tensors, str(tmp), metadata={_META_KEY: header})
        except Exception as exc:
            converted = from_safetensors(exc, path)  # a full disk is an OSError, reported as one
            if converted is None:
                raise
            raise converted from None
        with full_disk_names(path), open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        give_ordinary_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_state(path: str | os.PathLike, *, what: str = "state file", fix: str = "restore it, or start again") -> Any:
    """Read a state file written by :func:`save_state` (a one-line error for anything else, naming the
    file as ``what`` and ending with ``fix``)."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            header = json.loads(meta[_META_KEY])
            if header.get("format") != FORMAT:
                raise ValueError(f"format {header.get('format')!r}, expected {FORMAT!r}")
            tensors = {key: fh.get_tensor(key) for key in fh.keys()}
        return _decode(header["state"], tensors)
    except Exception as exc:  # noqa: BLE001 - any failure means the file cannot be used
        raise NlpkitError(
            f"{what} {path} is unreadable or not an nlpkit state file ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:100] if str(exc) else ''}); {fix}."
        ) from None
