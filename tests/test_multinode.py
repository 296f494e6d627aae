"""Several machines: two `torchrun` invocations (--nnodes 2, --node-rank 0 and 1, one process each,
gloo over a local rendezvous) pretrain exactly like one process with 2 accumulation steps."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pretrain_args(corpus: Path, tok: Path, out: Path) -> list[str]:
    return ["pretrain", str(corpus), "--out", str(out), "--layers", "1", "--hidden", "32", "--heads", "2",
            "--tokenizer", str(tok), "--max-length", "32", "--batch-size", "2", "--steps", "4", "--eval-every", "2",
            "--save-every", "2", "--threads", "1", "--seed", "5"]


@pytest.mark.slow
def test_two_torchrun_nodes_match_one_process_with_double_accumulation(tmp_path, runs_dir):
    corpus = tmp_path / "docs.txt"
    with open(REPO / "data" / "reuters_sample.jsonl", encoding="utf-8") as fh:
        corpus.write_text("\n".join(" ".join(json.loads(line)["text"].split()) for _, line in zip(range(300), fh)) + "\n")
    from nlpkit.hf.tokenizer import train_wordpiece

    train_wordpiece(corpus.read_text(encoding="utf-8").splitlines(), 600).save_pretrained(tmp_path / "tok")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
           "NLPKIT_RUNS_DIR": str(runs_dir)}
    port = _free_port()
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
                               "--node-rank", str(rank), "--master-addr", "127.0.0.1", "--master-port", str(port),
                               "-m", "nlpkit", *_pretrain_args(corpus, tmp_path / "tok", tmp_path / "nodes")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for rank in (0, 1)]
    for node in nodes:
        _, err = node.communicate(timeout=600)
        assert node.returncode == 0, err[-2000:]
    single = subprocess.run([sys.executable, "-m", "nlpkit",
                             *_pretrain_args(corpus, tmp_path / "tok", tmp_path / "single"), "--grad-accum", "2"],
                            env=env, capture_output=True, text=True, timeout=600)
    assert single.returncode == 0, single.stderr[-2000:]
    two = json.loads((tmp_path / "nodes" / "pretrain.json").read_text())
    one = json.loads((tmp_path / "single" / "pretrain.json").read_text())
    assert two["throughput"]["world_size"] == 2 and one["throughput"]["world_size"] == 1
    assert two["throughput"]["tokens_per_step"] == one["throughput"]["tokens_per_step"] == 2 * 2 * 32
    assert abs(two["final_eval_loss"] - one["final_eval_loss"]) < 1e-4
