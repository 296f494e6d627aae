"""Data-parallel pretraining: 2 CPU processes (gloo) train exactly like 1 process with 2x accumulation."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest
import torch

from nlpkit.pretrain import PretrainConfig, pretrain

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _config(corpus: Path, out: Path, grad_accum: int) -> PretrainConfig:
    # one tokenizer for both runs: trained once
    return PretrainConfig(corpus=str(corpus), out=str(out), size=None, layers=1, hidden=32, heads=2,
                          tokenizer=str(corpus.parent / "tok"), max_length=32, batch_size=2, grad_accum=grad_accum, steps=4,
                          eval_every=2, save_every=2, eval_blocks=8, threads=1)


def _worker(rank: int, world: int, port: int, corpus: str, out: str, dump: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    res = pretrain(_config(Path(corpus), Path(out), grad_accum=1), record_run=(rank == 0))
    torch.save({k: v.detach().clone() for k, v in res.model.state_dict().items()}, f"{dump}.{rank}")
    torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_processes_match_one_process_with_double_accumulation(tmp_path, runs_dir):
    corpus = tmp_path / "docs.txt"
    with open(REPO / "data" / "reuters_sample.jsonl", encoding="utf-8") as fh:
        corpus.write_text("\n".join(" ".join(json.loads(line)["text"].split()) for _, line in zip(range(300), fh)) + "\n")
    from nlpkit.hf.tokenizer import train_wordpiece

    train_wordpiece(corpus.read_text(encoding="utf-8").splitlines(), 600).save_pretrained(tmp_path / "tok")
    dump = str(tmp_path / "params")
    torch.multiprocessing.spawn(_worker, args=(2, _free_port(), str(corpus), str(tmp_path / "ddp"), dump),
                                nprocs=2, join=True)
    p0, p1 = torch.load(f"{dump}.0", weights_only=True), torch.load(f"{dump}.1", weights_only=True)
    for name in p0:  # DDP keeps the replicas identical
        assert torch.equal(p0[name], p1[name]), name

    # saved once, by rank 0: one run in the registry, one report, one checkpoint
    assert len([p for p in runs_dir.iterdir() if not p.name.startswith(".")]) == 1
    ddp = json.loads((tmp_path / "ddp" / "pretrain.json").read_text())
    assert ddp["throughput"]["world_size"] == 2 and ddp["throughput"]["tokens_per_step"] == 2 * 2 * 32
    assert not list((tmp_path / "ddp").glob(".tmp-*"))

    # same global batch (2 blocks x 2 processes = 2 blocks x 2 micro-batches): same training
    single = pretrain(_config(corpus, tmp_path / "single", grad_accum=2), record_run=False)
    assert single.report["throughput"]["tokens_per_step"] == ddp["throughput"]["tokens_per_step"]
    assert abs(single.report["final_eval_loss"] - ddp["final_eval_loss"]) < 1e-4
    for name, value in single.model.state_dict().items():
        assert torch.allclose(value, p0[name], atol=1e-5), name
