"""The training toolbox (nlpkit.training): schedule, parameter groups, AdamW, RNG state, process context.

The schedule and the parameter groups replaced two copies each (pretraining's and fine-tuning's);
the copies are kept here, verbatim, as the reference the shared functions must reproduce exactly.
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from nlpkit.errors import ConfigError
from nlpkit.training.distributed import DistContext, dist_context
from nlpkit.training.optim import adamw, param_groups
from nlpkit.training.rng import rng_state, set_rng_state
from nlpkit.training.schedule import lr_multiplier


# --- the two schedules this one replaced (verbatim) ---------------------------------------------

def old_pretrain_lr_at(cfg, step: int, progress: float) -> float:
    if cfg.warmup >= 1:
        warm = min(1.0, (step + 1) / cfg.warmup)
    elif cfg.warmup > 0:
        warm = min(1.0, max(progress, 1e-9) / cfg.warmup)
    else:
        warm = 1.0
    p = min(max(progress, 0.0), 1.0)
    shape = (1.0 - p) if cfg.schedule == "linear" else 0.5 * (1.0 + math.cos(math.pi * p))
    return cfg.lr * warm * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * shape)


def old_finetune_lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    if total_steps <= warmup_steps:
        return 1.0
    return max(0.0, (total_steps - step) / (total_steps - warmup_steps))


class _Cfg:
    def __init__(self, **kw):
        self.__dict__.update(kw)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("warmup", [0, 0.06, 0.3, 1, 7, 60])
@pytest.mark.parametrize("min_lr_ratio", [0.0, 0.1, 1.0])
def test_schedule_reproduces_pretraining_by_steps_exactly(schedule, warmup, min_lr_ratio):
    cfg = _Cfg(lr=7e-4, warmup=warmup, schedule=schedule, min_lr_ratio=min_lr_ratio)
    for total in (1, 13, 100, 997):
        for step in range(total + 2):  # a step past the end, as a resumed longer run may ask
            old = old_pretrain_lr_at(cfg, step, step / total)
            new = lr_multiplier(step, total_steps=total, warmup=warmup, shape=schedule, min_ratio=min_lr_ratio,
                                scale=cfg.lr)
            assert new == old, (total, step)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("warmup", [0, 0.06, 5])
def test_schedule_reproduces_pretraining_under_a_time_budget_exactly(schedule, warmup):
    cfg = _Cfg(lr=1e-3, warmup=warmup, schedule=schedule, min_lr_ratio=0.1)
    rng = np.random.default_rng(0)
    elapsed = np.cumsum(rng.uniform(0.01, 0.5, 500))
    for step, e in enumerate(elapsed):
        progress = float(e) / 60.0  # a 60 s budget, overrun at the end
        assert lr_multiplier(step, progress=progress, warmup=warmup, shape=schedule, min_ratio=0.1,
                             scale=cfg.lr) == old_pretrain_lr_at(cfg, step, progress)


def test_schedule_reproduces_finetuning_exactly():
    for total in (0, 1, 2, 10, 57, 400):
        for warmup_steps in sorted({0, 1, 3, int(round(0.1 * total)), total, total + 2}):
            for step in range(total + 3):
                new = lr_multiplier(step, total_steps=total, warmup=warmup_steps, decay_after_warmup=True)
                assert new == old_finetune_lr_factor(step, warmup_steps, total), (total, warmup_steps, step)


def test_schedule_shape_checks():
    assert lr_multiplier(0, total_steps=10) == 1.0
    assert lr_multiplier(5, total_steps=10) == 0.5
    assert lr_multiplier(10, total_steps=10, shape="cosine", min_ratio=0.1) == pytest.approx(0.1)
    with pytest.raises(ValueError):
        lr_multiplier(0, total_steps=10, shape="step")
    with pytest.raises(ValueError):
        lr_multiplier(0)
    with pytest.raises(ValueError):
        lr_multiplier(0, total_steps=10, warmup=0.1, decay_after_warmup=True)
    with pytest.raises(ValueError):
        lr_multiplier(0, progress=0.5, warmup=3, decay_after_warmup=True)


def test_bert_schedule_by_share_of_the_run_warms_up_then_decays_over_the_rest():
    from nlpkit.training.schedule import lr_multiplier

    def at(p):
        return lr_multiplier(0, progress=p, warmup=0.2, decay_after_warmup=True)

    assert at(0.1) == pytest.approx(0.5) and at(0.2) == pytest.approx(1.0)  # warm-up over the first 20 %
    assert at(0.6) == pytest.approx(0.5) and at(1.0) == 0.0 and at(1.5) == 0.0  # linear decay over the other 80 %
    # the same curve as the step-based one when progress is step / total
    assert at(0.6) == pytest.approx(lr_multiplier(60, total_steps=100, warmup=20, decay_after_warmup=True))


# --- the two parameter-group rules this one replaced (verbatim) ---------------------------------

def old_pretrain_param_groups(model, weight_decay: float) -> list[dict]:
    decay, no_decay, seen = [], [], set()
    for p in model.parameters():
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def old_finetune_param_groups(model, *, lr, weight_decay, layer_decay=1.0, head_lr=None) -> list[dict]:
    import re

    layer_re = re.compile(r"\.layers?\.(\d+)\.")

    def layer_id(name, n_layers):
        m = layer_re.search(name)
        if m:
            return int(m.group(1)) + 1
        if "embed" in name:
            return 0
        return n_layers + 1

    n_layers = int(getattr(model.config, "num_hidden_layers", 0) or 0)
    groups: dict = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        depth = layer_id(name, n_layers)
        no_decay = p.ndim < 2 or "norm" in name.lower() or name.endswith(".bias")
        is_head = depth == n_layers + 1 and not ("pooler" in name or "norm" in name.lower())
        group_lr = head_lr if is_head and head_lr is not None else lr * layer_decay ** (n_layers + 1 - depth)
        key = (round(group_lr * 1e12), no_decay)
        if key not in groups:
            groups[key] = {"params": [], "lr": group_lr, "weight_decay": 0.0 if no_decay else weight_decay}
        groups[key]["params"].append(p)
    return list(groups.values())


def _same_groups(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for ga, gb in zip(a, b):
        assert [id(p) for p in ga["params"]] == [id(p) for p in gb["params"]]
        assert {k: v for k, v in ga.items() if k != "params"} == {k: v for k, v in gb.items() if k != "params"}


def _tiny(arch: str, head: str):
    """A 2-layer, 32-wide model of ``arch`` with a masked-LM or sequence-classification head."""
    import transformers as tf

    if arch == "bert":
        config = tf.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=64, max_position_embeddings=64, num_labels=3)
    elif arch == "modernbert":
        config = tf.ModernBertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=64, pad_token_id=0,
                                     bos_token_id=2, eos_token_id=3, cls_token_id=2, sep_token_id=3, num_labels=3)
    elif arch == "roberta":
        config = tf.RobertaConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=64, max_position_embeddings=66, num_labels=3)
    else:
        config = tf.DistilBertConfig(vocab_size=100, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                                     max_position_embeddings=64, num_labels=3)
    cls = {"mlm": tf.AutoModelForMaskedLM, "cls": tf.AutoModelForSequenceClassification}[head]
    torch.manual_seed(0)
    return cls.from_config(config)


@pytest.mark.parametrize("arch", ["bert", "modernbert", "roberta", "distilbert"])
def test_param_groups_reproduce_pretraining_groups(arch):
    """Pretraining's rule (decay on matrices) and the shared one (also by name) coincide on every
    masked-LM architecture nlpkit builds (BERT, ModernBERT) or commonly continues (--init-from)."""
    model = _tiny(arch, "mlm")
    new = param_groups(model, lr=1e-3, weight_decay=0.01)
    old = old_pretrain_param_groups(model, 0.01)
    _same_groups([{k: v for k, v in g.items() if k != "lr"} for g in new], old)
    assert all(g["lr"] == 1e-3 for g in new)


@pytest.mark.parametrize("arch", ["bert", "modernbert", "roberta", "distilbert"])
@pytest.mark.parametrize("head", ["mlm", "cls"])
@pytest.mark.parametrize("layer_decay,head_lr", [(1.0, None), (0.8, None), (0.65, 5e-3)])
def test_param_groups_reproduce_finetuning_groups(arch, head, layer_decay, head_lr):
    model = _tiny(arch, head)
    kw = dict(lr=2e-5, weight_decay=0.01, layer_decay=layer_decay, head_lr=head_lr)
    _same_groups(param_groups(model, **kw), old_finetune_param_groups(model, **kw))


def test_param_groups_skip_frozen_parameters_and_adamw_builds():
    model = _tiny("bert", "cls")
    model.bert.embeddings.word_embeddings.weight.requires_grad_(False)
    groups = param_groups(model, lr=1e-3, weight_decay=0.01)
    ids = {id(p) for g in groups for p in g["params"]}
    assert id(model.bert.embeddings.word_embeddings.weight) not in ids
    assert len(ids) == sum(1 for p in model.parameters() if p.requires_grad)
    opt = adamw(groups, lr=1e-3, betas=(0.9, 0.98), eps=1e-6, foreach=True)
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.defaults["betas"] == (0.9, 0.98) and opt.defaults["eps"] == 1e-6


# --- RNG state ------------------------------------------------------------------------------

def _draw() -> tuple:
    return random.random(), float(np.random.rand()), float(torch.rand(1))


def test_rng_state_round_trip_continues_every_generator(tmp_path):
    from nlpkit.state_file import load_state, save_state

    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    _draw()
    state = rng_state()
    expected = [_draw() for _ in range(3)]
    save_state(tmp_path / "s.safetensors", {"rng": state})  # the checkpoint format: no pickle
    _draw()
    set_rng_state(load_state(tmp_path / "s.safetensors", what="checkpoint", fix="")["rng"])
    assert [_draw() for _ in range(3)] == expected


# --- process context --------------------------------------------------------------------------

def test_dist_context_reads_the_launcher_environment(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    assert dist_context() == DistContext(rank=0, local_rank=0, world_size=1)
    assert dist_context().is_main
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    ctx = dist_context()
    assert (ctx.rank, ctx.local_rank, ctx.world_size, ctx.is_main) == (3, 1, 4, False)
    monkeypatch.setenv("RANK", "x")
    with pytest.raises(ConfigError, match="must be integers"):
        dist_context()


RANKS_SCRIPT = r"""
import json, sys
sys.path.insert(0, {repo!r})
from nlpkit.training.distributed import from_main, init_distributed, max_over_ranks
import torch
ctx = init_distributed("cpu")
mine = [3.0, 7.5][ctx.rank]  # rank 0 holds the smaller value: its value is not the maximum
print(json.dumps({{"rank": ctx.rank, "from_main": from_main(mine, ctx),
                  "max": max_over_ranks(mine, ctx, torch.device("cpu"))}}))
torch.distributed.destroy_process_group()
"""


@pytest.mark.slow
def test_rank_zeros_value_and_the_largest_value_reach_every_rank(tmp_path):
    import json
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "ranks.py"
    script.write_text(RANKS_SCRIPT.format(repo=str(Path(__file__).resolve().parent.parent)))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": "2",
                                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}) for r in range(2)]
    try:
        results = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err[-2000:]
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:
            p.kill()
    assert sorted(r["rank"] for r in results) == [0, 1]
    assert all(r["from_main"] == 3.0 and r["max"] == 7.5 for r in results)
    from nlpkit.training.distributed import from_main

    assert from_main(3.0, DistContext()) == 3.0  # a single process: its own value, nothing joined
