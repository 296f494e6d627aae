"""Training state files: an exact round trip, and no pickle ever read."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
import torch

from nlpkit.errors import NlpkitError
from nlpkit.state_file import load_state, save_state


def _trained_state():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98))
    for _ in range(2):
        model(torch.randn(5, 4)).sum().backward()
        opt.step()
        opt.zero_grad()
    py = random.getstate()
    np_state = np.random.get_state()
    return model, opt, {
        "model": model.state_dict(), "optimizer": opt.state_dict(), "step": 2,
        "config": {"lr": 1e-3, "name": "x", "none": None, "flag": True, "inf": float("inf")},
        "data": {"epoch": 1, "cursor": 7},
        "rng": {"python": [py[0], list(py[1]), py[2]],
                "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
                "torch": torch.get_rng_state()},
    }


def test_state_round_trip_is_exact_and_resumes_the_optimizer(tmp_path):
    model, opt, state = _trained_state()
    save_state(tmp_path / "state.safetensors", state)
    back = load_state(tmp_path / "state.safetensors")
    assert back["step"] == 2 and back["data"] == {"epoch": 1, "cursor": 7}
    assert back["config"] == state["config"]
    assert back["rng"]["python"] == state["rng"]["python"] and back["rng"]["numpy"] == state["rng"]["numpy"]
    assert torch.equal(back["rng"]["torch"], state["rng"]["torch"])
    assert back["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.98)
    assert set(back["optimizer"]["state"]) == set(state["optimizer"]["state"])  # int keys kept
    # A resumed optimizer takes the same next step as the original one.
    model2 = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    model2.load_state_dict(back["model"])
    opt2 = torch.optim.AdamW(model2.parameters(), lr=1e-3)
    opt2.load_state_dict(back["optimizer"])
    x = torch.randn(5, 4)
    for m, o in ((model, opt), (model2, opt2)):
        m(x).sum().backward()
        o.step()
    for a, b in zip(model.parameters(), model2.parameters()):
        assert torch.equal(a, b)
    assert not list(tmp_path.glob(".*tmp*"))


class _Marker:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_a_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "state.safetensors"
    bad.write_bytes(pickle.dumps({"model": _Marker(marker)}))
    with pytest.raises(NlpkitError, match="not an nlpkit state file"):
        load_state(bad)
    assert not marker.exists()
    torch.save({"step": 1}, tmp_path / "old.pt")  # torch's own (zip + pickle) format
    with pytest.raises(NlpkitError, match="unreadable"):
        load_state(tmp_path / "old.pt")


def test_objects_that_are_not_plain_data_are_not_stored(tmp_path):
    with pytest.raises(TypeError, match="cannot store"):
        save_state(tmp_path / "s.safetensors", {"x": object()})
    assert not list(tmp_path.iterdir())
