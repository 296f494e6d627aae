"""Streamed corpus reading, the seeded held-out rule, and the token store (build, reuse, damage, blocks)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from nlpkit.cli import app
from nlpkit.errors import DataError
from nlpkit.pretrain import PretrainConfig, pretrain
from nlpkit.pretrain import store as store_mod
from nlpkit.pretrain.corpus import heldout_count, heldout_positions, iter_file_docs, open_corpus, read_corpus
from nlpkit.pretrain.packing import StoreBlocks, pack
from nlpkit.pretrain.store import prepare_store

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()
MICRO = ["--layers", "1", "--hidden", "32", "--heads", "2", "--vocab-size", "600", "--max-length", "32",
         "--batch-size", "4", "--steps", "2", "--eval-every", "2", "--save-every", "2", "--threads", "1"]


@pytest.fixture(scope="module")
def docs() -> list[str]:
    with open(REPO / "data" / "reuters_sample.jsonl", encoding="utf-8") as fh:
        return [" ".join(json.loads(line)["text"].split()) for _, line in zip(range(300), fh)]


@pytest.fixture(scope="module")
def corpus(docs, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("store-corpus") / "docs.txt"
    path.write_text("\n".join(docs) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tokenizer(docs):
    from nlpkit.hf.tokenizer import train_wordpiece

    return train_wordpiece(docs, 600)


def _zstd(data: bytes) -> bytes:
    zstandard = pytest.importorskip("zstandard")
    return zstandard.ZstdCompressor().compress(data)


# --- streaming every corpus kind ----------------------------------------------------------------

def test_every_corpus_kind_streams_the_same_documents(docs, tmp_path):
    from nlpkit.data import write_split
    from nlpkit.data.convert import read_dataset

    few = docs[:12]
    lines = ("\n".join(few) + "\n").encode("utf-8")
    jsonl = "".join(json.dumps({"text": t}) + "\n" for t in few).encode("utf-8")
    (tmp_path / "a.txt").write_bytes(lines)
    (tmp_path / "a.txt.gz").write_bytes(gzip.compress(lines))
    (tmp_path / "a.txt.zst").write_bytes(_zstd(lines))
    (tmp_path / "a.jsonl").write_bytes(jsonl)
    (tmp_path / "a.jsonl.gz").write_bytes(gzip.compress(jsonl))
    (tmp_path / "a.jsonl.zst").write_bytes(_zstd(jsonl))
    folder = tmp_path / "folder"
    folder.mkdir()
    for i, t in enumerate(few):
        data = t.encode("utf-8")
        name, data = [(f"{i:02d}.txt", data), (f"{i:02d}.txt.gz", gzip.compress(data)),
                      (f"{i:02d}.txt.zst", _zstd(data))][i % 3]
        (folder / name).write_bytes(data)
    parts = tmp_path / "parts"
    parts.mkdir()
    for k in range(3):
        (parts / f"p{k}.txt.gz").write_bytes(gzip.compress(("\n".join(few[4 * k:4 * k + 4]) + "\n").encode("utf-8")))
    for path in ["a.txt", "a.txt.gz", "a.txt.zst", "a.jsonl", "a.jsonl.gz", "a.jsonl.zst", "folder"]:
        stream = open_corpus(tmp_path / path, heldout_docs=2, seed=0)
        assert [t for _, t in stream.labelled()] == few, path
        assert sum(h for h, _ in stream.labelled()) == 2
    by_glob = open_corpus(str(parts / "p*.txt.gz"), heldout_docs=2)
    by_list = open_corpus([str(parts / f"p{k}.txt.gz") for k in range(3)], heldout_docs=2)
    assert by_glob.kind == by_list.kind == "files"
    assert [t for _, t in by_glob.labelled()] == [t for _, t in by_list.labelled()] == few

    ds = read_dataset(REPO / "data" / "reuters_sample.jsonl")
    write_split(tmp_path / "split", {"train": ds.subset(range(0, 30)), "valid": ds.subset(range(30, 35)),
                                     "test": ds.subset(range(35, 40))}, {"method": "test"})
    stream = open_corpus(tmp_path / "split")
    assert stream.heldout_from == "valid"
    assert list(stream.train) == ds.texts[:30] and list(stream.heldout) == ds.texts[30:35]


def test_a_text_corpus_is_read_line_by_line_not_whole(tmp_path):
    # a bad byte on line 3: the first documents are read before the reader gets there
    path = tmp_path / "c.txt"
    path.write_bytes(b"first document\nsecond document\ncaf\xe9 prices\n")
    documents = iter_file_docs(path, "text-lines", {})
    assert next(documents) == "first document" and next(documents) == "second document"
    with pytest.raises(DataError, match=r"byte 0xe9 at byte offset 34 \(line 3\).*--encoding latin-1"):
        next(documents)


def test_jsonl_is_read_in_chunks_with_real_line_numbers(tmp_path, monkeypatch):
    from nlpkit.pretrain import corpus as corpus_mod

    monkeypatch.setattr(corpus_mod, "JSONL_CHUNK_LINES", 3)
    path = tmp_path / "c.jsonl"
    rows = [{"text": f"document {i}"} for i in range(10)]
    rows[7]["text"] = " "
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    documents = corpus_mod.iter_file_docs(path, "dataset", {})
    assert [next(documents) for _ in range(6)] == [f"document {i}" for i in range(6)]
    with pytest.raises(DataError, match="empty text at line 8 of"):
        list(documents)
    kept = list(corpus_mod.iter_file_docs(path, "dataset", {"drop_empty": True}))
    assert kept == [f"document {i}" for i in range(10) if i != 7]


# --- the held-out rule --------------------------------------------------------------------------

def test_heldout_rule_is_seeded_exact_and_needs_only_the_count():
    a = heldout_positions(10_000, 500, seed=3)
    assert len(a) == 500 and len(set(a.tolist())) == 500 and (np.diff(a) > 0).all()
    assert np.array_equal(a, heldout_positions(10_000, 500, seed=3, chunk=777))  # chunking changes nothing
    assert not np.array_equal(a, heldout_positions(10_000, 500, seed=4))
    from nlpkit.pretrain.corpus import _position_keys

    keys = _position_keys(3, 0, 10_000)
    assert np.array_equal(a, np.sort(np.argsort(keys)[:500]))  # the smallest seeded keys
    assert heldout_count(0.05, 10_000) == 500 and heldout_count(0.05, 10) == 1 and heldout_count(2, 10) == 2


def test_read_corpus_holds_out_by_the_rule(corpus, docs):
    c = read_corpus(corpus, heldout_docs=0.05, seed=1)
    held = heldout_positions(len(docs), 15, seed=1)
    assert c.heldout == [docs[i] for i in held]
    assert c.train == [d for i, d in enumerate(docs) if i not in set(held.tolist())]
    assert read_corpus(corpus, heldout_docs=0.05, seed=1).heldout == c.heldout


# --- the store ----------------------------------------------------------------------------------

def test_store_blocks_are_the_blocks_pack_makes_across_shards(corpus, tokenizer, tmp_path, monkeypatch):
    from nlpkit.hf.tokenizer import encode_docs

    monkeypatch.setattr(store_mod, "SHARD_CHARS", 20_000)  # a dozen shards: blocks straddle them
    stream = open_corpus(corpus, heldout_docs=0.05)
    store = prepare_store(tmp_path / "s", stream, tokenizer)
    assert len(store.train.shards) > 5 and store.train.shards[0].tokens_map().dtype == np.uint16
    expected = pack(encode_docs(tokenizer, list(stream.train)), 32)
    blocks = StoreBlocks(store.train, 32)
    assert len(blocks) == len(expected)
    assert torch.equal(blocks[np.arange(len(blocks))], expected)
    assert torch.equal(blocks[5:9], expected[5:9])
    lengths = [len(d) for d in encode_docs(tokenizer, list(stream.heldout))]
    offsets = [s.offsets_map() for s in store.heldout.shards]  # each document's tokens, [SEP] not counted
    assert np.concatenate([np.diff(o) - 1 for o in offsets]).tolist() == lengths
    train_lengths = [len(d) for d in encode_docs(tokenizer, list(stream.train))]
    assert store.train.length_counts().tolist() == np.bincount(train_lengths).tolist()  # across the shards


def test_corpus_report_from_length_counts_is_the_report_of_the_lengths():
    from nlpkit.pretrain.corpus import corpus_report

    stats = {"source": "s", "kind": "txt", "heldout_from": "h", "documents": 7, "heldout_documents": 0, "words": 1,
             "characters": 1, "fingerprint": "f"}
    lengths = np.array([3, 9, 9, 14, 126, 127, 300])
    report = corpus_report(stats, np.bincount(lengths), 128)
    q = np.percentile(lengths, [50, 90, 99])
    assert report["tokens"] == lengths.sum() and report["tokens_per_doc"]["max"] == 300
    assert report["tokens_per_doc"]["mean"] == pytest.approx(lengths.mean())
    assert [report["tokens_per_doc"][k] for k in ("median", "p90", "p99")] == pytest.approx(q.tolist())
    assert report["docs_over_max_length"] == 2  # 127 and 300 tokens do not fit 128 with [CLS] and [SEP]


def test_parallel_build_writes_the_same_store(corpus, tokenizer, tmp_path, monkeypatch):
    monkeypatch.setattr(store_mod, "SHARD_CHARS", 30_000)
    monkeypatch.setattr(store_mod, "PARALLEL_MIN_BYTES", 0)
    one = prepare_store(tmp_path / "one", open_corpus(corpus), tokenizer, num_proc=1)
    two = prepare_store(tmp_path / "two", open_corpus(corpus), tokenizer, num_proc=2)
    assert two.meta["build"]["num_proc"] == 2 and one.meta["build"]["num_proc"] == 1
    assert one.path.name == two.path.name  # same fingerprint
    for a, b in zip(one.train.shards + one.heldout.shards, two.train.shards + two.heldout.shards):
        assert np.array_equal(a.tokens_map(), b.tokens_map()) and np.array_equal(a.offsets_map(), b.offsets_map())


def test_store_is_reused_by_fingerprint_and_rebuilt_when_the_corpus_changes(corpus, tokenizer, tmp_path, monkeypatch):
    first = prepare_store(tmp_path / "s", open_corpus(corpus), tokenizer)
    assert not first.reused

    def no_build(*a, **k):
        raise AssertionError("rebuilt")

    with monkeypatch.context() as m:
        m.setattr(store_mod, "_build", no_build)
        again = prepare_store(tmp_path / "s", open_corpus(corpus), tokenizer)
    assert again.reused and again.path == first.path
    changed = tmp_path / "changed.txt"
    changed.write_bytes(corpus.read_bytes().replace(b"the", b"a", 1))
    other = prepare_store(tmp_path / "s", open_corpus(changed), tokenizer)
    assert not other.reused and other.path != first.path
    other_seed = prepare_store(tmp_path / "s", open_corpus(corpus, seed=5), tokenizer)  # another held-out slice
    assert other_seed.path not in (first.path, other.path)


@pytest.mark.parametrize("damage, fragment", [
    ("truncate", "shard train-00000"),
    ("meta", "unreadable meta.json"),
    ("missing", "shard train-00000"),
    ("alter", "shard train-00000 does not match its CRC-32"),
])
def test_a_damaged_store_is_one_line(corpus, tmp_path, damage, fragment):
    out = tmp_path / "o"
    result = runner.invoke(app, ["pretrain", str(corpus), "--out", str(out), "--prepare-only", *MICRO])
    assert result.exit_code == 0, result.output
    store = next((out / "token_store").iterdir())
    shard = store / "train-00000.tokens.npy"
    if damage == "truncate":
        shard.write_bytes(shard.read_bytes()[:1000])
    elif damage == "alter":  # same size, one token changed: only the checksum can tell
        tokens = np.load(shard)
        tokens[len(tokens) // 2] ^= 1
        np.save(shard, tokens)
    elif damage == "meta":
        (store / "meta.json").write_text("{", encoding="utf-8")
    else:
        shard.unlink()
    result = runner.invoke(app, ["pretrain", str(corpus), "--out", str(out), "--resume", *MICRO])
    assert result.exit_code == 1
    assert f"Error: token store {store} is damaged ({fragment}" in result.output
    assert "delete that folder and run again" in result.output and "Traceback" not in result.output


# --- the command --------------------------------------------------------------------------------

def test_prepare_only_builds_the_store_and_no_model_then_resume_trains_with_it(corpus, tmp_path):
    out = tmp_path / "o"
    result = runner.invoke(app, ["pretrain", str(corpus), "--out", str(out), "--prepare-only", *MICRO])
    assert result.exit_code == 0, result.output
    rep = json.loads((out / "pretrain.json").read_text())
    assert rep["status"] == "prepared" and not rep["store"]["reused"]
    assert "300 documents (15 held out)" in result.stdout and "token store" in result.stdout
    assert f"{rep['store']['train_tokens'] + rep['store']['heldout_tokens']:,} tokens" in result.stdout
    assert not (out / "model.safetensors").exists() and not (out / "checkpoints").exists()
    assert (out / "tokenizer.json").is_file() and list((out / "token_store").glob("*/meta.json"))
    result = runner.invoke(app, ["pretrain", str(corpus), "--out", str(out), "--prepare-only", "--resume", *MICRO])
    assert result.exit_code == 0 and "(reused)" in result.stdout, result.output
    result = runner.invoke(app, ["pretrain", str(corpus), "--out", str(out), "--resume", *MICRO[:-8], "--max-length",
                                 "16", "--batch-size", "4", "--steps", "2", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "reusing token store" in result.output
    rep = json.loads((out / "pretrain.json").read_text())
    assert rep["status"] == "complete" and rep["steps"] == 2 and rep["config"]["max_length"] == 16
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(out).model_max_length == 16  # the length chosen at training time


def test_a_shared_store_serves_two_runs(corpus, tmp_path):
    shared = tmp_path / "shared"
    for name in ("a", "b"):
        result = runner.invoke(app, ["pretrain", str(corpus), "--out", str(tmp_path / name), "--store", str(shared),
                                     *MICRO])
        assert result.exit_code == 0, result.output
    assert "reusing token store" in result.output and not (tmp_path / "b" / "token_store").exists()
    assert len(list(shared.iterdir())) == 1


def test_tokenizer_sample_docs_trains_on_the_first_documents_and_is_recorded(corpus, tmp_path):
    from nlpkit.hf.tokenizer import train_wordpiece

    cfg = PretrainConfig(corpus=str(corpus), out=str(tmp_path / "o"), vocab_size=300, tokenizer_sample_docs=100)
    res = pretrain(cfg, prepare_only=True, record_run=False)
    assert res.report["tokenizer"]["sample_docs"] == 100
    assert json.loads((tmp_path / "o" / "pretrain_config.json").read_text())["tokenizer_sample_docs"] == 100
    from transformers import AutoTokenizer

    first = list(open_corpus(corpus).train)[:100]
    assert AutoTokenizer.from_pretrained(tmp_path / "o").get_vocab() == train_wordpiece(first, 300).get_vocab()


def test_a_quoted_glob_is_the_corpus(docs, tmp_path):
    for k in range(3):
        (tmp_path / f"part{k}.txt.gz").write_bytes(gzip.compress(("\n".join(docs[100 * k:100 * k + 100]) + "\n").encode()))
    out = tmp_path / "o"
    result = runner.invoke(app, ["pretrain", str(tmp_path / "part*.txt.gz"), "--out", str(out), "--prepare-only", *MICRO])
    assert result.exit_code == 0, result.output
    assert json.loads((out / "pretrain.json").read_text())["corpus"]["documents"] == 285
    result = runner.invoke(app, ["pretrain", str(tmp_path / "nothing*.txt"), "--out", str(tmp_path / "p"), *MICRO])
    assert result.exit_code == 1 and "no file matches the corpus pattern" in result.output


def test_out_keeps_only_the_store_of_its_current_corpus(docs, tmp_path):
    corpus = tmp_path / "docs.txt"
    corpus.write_text("\n".join(docs) + "\n", encoding="utf-8")
    out = tmp_path / "o"
    assert runner.invoke(app, ["pretrain", str(corpus), "--out", str(out), "--prepare-only", *MICRO]).exit_code == 0
    (old,) = (out / "token_store").iterdir()
    corpus.write_text("\n".join(docs[::-1]) + "\n", encoding="utf-8")  # same path, other content
    result = runner.invoke(app, ["pretrain", str(corpus), "--out", str(out), "--prepare-only", "--resume", *MICRO])
    assert result.exit_code == 0 and "(built in" in result.stdout, result.output
    (new,) = (out / "token_store").iterdir()
    assert new != old


# --- bad corpora and a full disk: one line, nothing half-written ---------------------------------

def test_a_gzip_corpus_cut_half_way_is_one_line(docs, tmp_path):
    packed = gzip.compress(("\n".join(docs) + "\n").encode("utf-8"))
    corpus = tmp_path / "docs.txt.gz"
    corpus.write_bytes(packed[: len(packed) // 2])
    result = runner.invoke(app, ["pretrain", str(corpus), "--out", str(tmp_path / "o"), "--prepare-only", *MICRO])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"cannot read {corpus}: compressed data ends early: the file is truncated" in " ".join(result.output.split())
    assert not (tmp_path / "o").exists()


def test_a_corpus_of_empty_lines_is_one_line(tmp_path):
    corpus = tmp_path / "blank.txt"
    corpus.write_text("\n  \n\t\n\n", encoding="utf-8")
    result = runner.invoke(app, ["pretrain", str(corpus), "--out", str(tmp_path / "o"), "--prepare-only", *MICRO])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{corpus}: only 0 non-empty document(s); need at least 2" in " ".join(result.output.split())
    assert not (tmp_path / "o").exists()


def test_a_full_disk_while_the_store_is_written_leaves_no_store(corpus, tmp_path, monkeypatch):
    import errno

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_mod.np, "save", full)
    store = tmp_path / "shared"
    result = runner.invoke(app, ["pretrain", str(corpus), "--out", str(tmp_path / "o"), "--prepare-only",
                                 "--store", str(store), *MICRO])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"no space left on the device while writing the token store in {store}; free some space, or put the " \
           "store on a disk with room (--store DIR)." in " ".join(result.output.split())
    assert not (tmp_path / "o").exists()
    assert not store.exists() or not [p for p in store.iterdir() if not p.name.startswith(".")]  # none listed as ready
    assert not store.exists() or not list(store.iterdir())  # nor its half-written hidden folder
