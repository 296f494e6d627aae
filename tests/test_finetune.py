"""Fine-tuning library: encoding of long documents, batching, schedule, and the transformer model
contract (fit -> predict_proba -> save -> load) on a tiny BERT built in the test (no downloads)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from conftest import make_dataset

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from nlpkit.errors import ConfigError, NlpkitError  # noqa: E402
from nlpkit.hf.batching import (  # noqa: E402
    chunk_windows,
    encode_texts,
    head_tail,
    length_grouped_batches,
    pool_logits,
)
from nlpkit.hf.checkpoint import check_checkpoint_dir  # noqa: E402
from nlpkit.models.transformer import positive_weights  # noqa: E402
from nlpkit.training.optim import layer_id, param_groups  # noqa: E402
from nlpkit.training.schedule import lr_multiplier  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def bundled_rows(name="reuters_sample.jsonl", n=None):
    with open(REPO / "data" / name, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    return rows[:n] if n else rows


def edit_config(folder: Path, **changes) -> None:
    """Change fields of a checkpoint's config.json (to break it in a known way)."""
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")


def break_checkpoint(folder: Path, case: str, *, layers: int) -> None:
    """Damage a checkpoint folder the way users' folders get damaged (``case`` names how)."""
    if case == "other-sizes":  # config.json from a wider model
        edit_config(folder, hidden_size=64, intermediate_size=128)
    elif case == "other-architecture":  # config.json from another family
        edit_config(folder, model_type="distilbert", architectures=["DistilBertForMaskedLM"], dim=32, n_layers=layers,
                    n_heads=2, hidden_dim=64)
    elif case == "no-tokenizer":
        for f in folder.glob("tokenizer*"):
            f.unlink()
    elif case == "bad-json":
        (folder / "config.json").write_text('{"model_type": "bert", "hidden', encoding="utf-8")
    elif case == "truncated-weights":
        weights = folder / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:5000])
    else:
        raise ValueError(case)


def make_tiny_checkpoint(out: Path, *, num_labels: int | None = None, hidden: int = 32, layers: int = 2,
                         vocab_size: int = 400, seed: int = 0, positions: int = 512) -> Path:
    """A 2-layer x 32-hidden BERT with a WordPiece tokenizer trained on the bundled samples."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertForMaskedLM, BertForSequenceClassification, PreTrainedTokenizerFast

    texts = [r["text"] for r in bundled_rows()] + [r["text"] for r in bundled_rows("agnews_sample.jsonl")]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=SPECIALS))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=512)
    out.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(out)
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=2, intermediate_size=2 * hidden, max_position_embeddings=positions)
    if num_labels:
        config.num_labels = num_labels
        BertForSequenceClassification(config).save_pretrained(out)
    else:
        BertForMaskedLM(config).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> Path:
    return make_tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny-bert")


@pytest.fixture(scope="session")
def tokenizer(tiny_ckpt):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_ckpt, local_files_only=True)


def reuters_parts(n_train=60, n_valid=20, n_test=20):
    rows = bundled_rows()
    texts, labels = [r["text"] for r in rows], [r["labels"] for r in rows]
    names = sorted({lab for labs in labels for lab in labs})
    cut = [0, n_train, n_train + n_valid, n_train + n_valid + n_test]
    return [make_dataset(texts[a:b], labels[a:b], task="multi", label_names=names, ids=[r["id"] for r in rows[a:b]])
            for a, b in zip(cut, cut[1:])]


def agnews_parts(n_train=60, n_valid=20, n_test=20):
    rows = bundled_rows("agnews_sample.jsonl")
    texts, labels = [r["text"] for r in rows], [r["label"] for r in rows]
    names = sorted(set(labels))
    cut = [0, n_train, n_train + n_valid, n_train + n_valid + n_test]
    return [make_dataset(texts[a:b], labels[a:b], task="single", label_names=names) for a, b in zip(cut, cut[1:])]


FAST = dict(epochs=1, max_length=32, batch_size=8, lr=1e-3, threads=1, device="cpu")


# --- pure helpers ----------------------------------------------------------------------------

def test_head_tail_keeps_a_quarter_head_and_the_rest_tail():
    ids = list(range(100))
    out = head_tail(ids, 20)
    assert out == list(range(5)) + list(range(85, 100))
    assert head_tail(ids[:10], 20) == ids[:10]


@pytest.mark.parametrize("n,window,overlap", [(10, 4, 1), (100, 30, 10), (31, 30, 0), (5, 30, 10)])
def test_chunk_windows_cover_the_document_with_the_requested_overlap(n, window, overlap):
    wins = chunk_windows(n, window, overlap, max_chunks=100)
    covered = set()
    for a, b in wins:
        assert 0 <= a < b <= n and b - a == min(window, n)
        covered.update(range(a, b))
    assert covered == set(range(n))
    assert wins[-1][1] == n
    for (_a1, b1), (a2, _b2) in zip(wins, wins[1:-1]):
        assert b1 - a2 == overlap  # all but the last (end-aligned) window share exactly `overlap`
    assert len(chunk_windows(n, window, overlap, max_chunks=2)) == min(2, len(wins))


def test_encode_modes_respect_max_length_and_special_tokens(tokenizer):
    long_text = " ".join(["cocoa"] * 50 + ["wheat"] * 50)
    short = "wheat"
    for mode in ("truncate", "head-tail", "chunks"):
        enc = encode_texts(tokenizer, [long_text, short, ""], max_length=16, long_text=mode, overlap=4, max_chunks=20)
        assert enc.n_docs == 3
        cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
        for s in enc.seqs:
            assert len(s) <= 16 and s[0] == cls and s[-1] == sep
        assert len(enc.doc_seqs(1)) == 1 and len(enc.doc_seqs(2)) == 1  # short and empty docs: one sequence
        if mode == "chunks":
            assert len(enc.doc_seqs(0)) > 1
        else:
            assert len(enc.doc_seqs(0)) == 1
    wheat = tokenizer("wheat", add_special_tokens=False)["input_ids"][0]
    ht = encode_texts(tokenizer, [long_text], max_length=16, long_text="head-tail").seqs[0]
    tr = encode_texts(tokenizer, [long_text], max_length=16, long_text="truncate").seqs[0]
    assert wheat in ht and wheat not in tr  # only head+tail sees the end of the document


def test_encode_rejects_a_max_length_without_room_for_text(tokenizer):
    with pytest.raises(ConfigError, match="max-length"):
        encode_texts(tokenizer, ["x"], max_length=2)


def test_length_grouped_batches_are_seeded_complete_and_grouped():
    rng_lengths = np.random.default_rng(0).integers(1, 500, size=1000)
    a = length_grouped_batches(rng_lengths, 16, np.random.default_rng(3), mega=10)
    b = length_grouped_batches(rng_lengths, 16, np.random.default_rng(3), mega=10)
    c = length_grouped_batches(rng_lengths, 16, np.random.default_rng(4), mega=10)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    assert sorted(np.concatenate(a).tolist()) == list(range(1000))
    # within-batch spread is much smaller than for random batches (less padding)
    spread = np.mean([rng_lengths[x].max() - rng_lengths[x].min() for x in a])
    perm = np.random.default_rng(0).permutation(1000)
    random_spread = np.mean([np.ptp(rng_lengths[perm[i:i + 16]]) for i in range(0, 1000, 16)])
    assert spread < random_spread / 3


def lr_factor(step, warmup_steps, total_steps):
    """Fine-tuning's schedule, as TransformerClassifier calls the shared one."""
    return lr_multiplier(step, total_steps=total_steps, warmup=warmup_steps, decay_after_warmup=True)


def test_lr_factor_warms_up_then_decays_linearly_to_zero():
    f = [lr_factor(s, 10, 100) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0) and f[55] == pytest.approx(0.5)
    assert all(x >= y for x, y in zip(f[10:], f[11:]))
    assert lr_factor(100, 10, 100) == 0.0
    assert lr_factor(0, 0, 10) == 1.0


def test_layer_decay_gives_lower_layers_smaller_learning_rates(tiny_ckpt):
    from transformers import AutoModelForSequenceClassification

    assert layer_id("bert.embeddings.word_embeddings.weight", 2) == 0
    assert layer_id("bert.encoder.layer.1.output.dense.weight", 2) == 2
    assert layer_id("classifier.weight", 2) == 3
    model = AutoModelForSequenceClassification.from_pretrained(tiny_ckpt, num_labels=3, local_files_only=True)
    groups = param_groups(model, lr=1.0, weight_decay=0.01, layer_decay=0.5, head_lr=7.0)
    lr_of = {}
    for g in groups:
        for p in g["params"]:
            lr_of[id(p)] = (g["lr"], g["weight_decay"])
    named = dict(model.named_parameters())
    assert lr_of[id(named["bert.embeddings.word_embeddings.weight"])] == (0.125, 0.01)
    assert lr_of[id(named["bert.encoder.layer.0.attention.self.query.weight"])] == (0.25, 0.01)
    assert lr_of[id(named["bert.encoder.layer.1.attention.self.query.bias"])] == (0.5, 0.0)
    assert lr_of[id(named["classifier.weight"])] == (7.0, 0.01)
    assert sum(len(g["params"]) for g in groups) == len(named)


def test_pool_logits_mean_and_max_per_document():
    logits = torch.tensor([[1.0, 4.0], [3.0, 0.0], [5.0, 5.0]])
    seq_doc = torch.tensor([0, 0, 1])
    assert torch.allclose(pool_logits(logits, seq_doc, 2, "mean"), torch.tensor([[2.0, 2.0], [5.0, 5.0]]))
    assert torch.allclose(pool_logits(logits, seq_doc, 2, "max"), torch.tensor([[3.0, 4.0], [5.0, 5.0]]))


def test_positive_weights_favour_rare_labels_and_are_clipped():
    y = np.zeros((100, 3))
    y[:50, 0] = 1
    y[:2, 1] = 1
    w = positive_weights(y, max_weight=30)
    assert w[0] == pytest.approx(1.0) and w[1] == 30.0 and w[2] == 1.0


# --- checkpoint folder checks ------------------------------------------------------------------

def test_checkpoint_checks_name_the_missing_piece(tmp_path, tiny_ckpt):
    import shutil

    with pytest.raises(ConfigError, match="not found"):
        check_checkpoint_dir(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="must be a folder"):
        check_checkpoint_dir(tmp_path / "file")
    no_weights = tmp_path / "no_weights"
    shutil.copytree(tiny_ckpt, no_weights)
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(ConfigError, match="no model weights .*model.safetensors"):
        check_checkpoint_dir(no_weights)
    no_tok = tmp_path / "no_tok"
    shutil.copytree(tiny_ckpt, no_tok)
    (no_tok / "tokenizer.json").unlink()
    with pytest.raises(ConfigError, match="no tokenizer .*tokenizer.json"):
        check_checkpoint_dir(no_tok)
    assert check_checkpoint_dir(tiny_ckpt) == tiny_ckpt


def test_bad_options_are_rejected_before_any_work(tiny_ckpt):
    from nlpkit.models.transformer import TransformerClassifier

    for bad, fragment in [(dict(long_text="middle"), "--long-text"), (dict(pool="sum", long_text="chunks"), "--pool"),
                          (dict(chunk_stride=8), "only applies"), (dict(layer_decay=1.5), "--layer-decay"),
                          (dict(warmup=1.0), "--warmup"), (dict(epochs=0), "epochs"), (dict(lr=-1.0), "--lr"),
                          (dict(long_text="chunks", chunk_stride=500, max_length=64), "--chunk-stride"),
                          (dict(precision="fp16"), "--precision"), (dict(label_smoothing=1.0), "--label-smoothing"),
                          (dict(label_smoothing=-0.1), "--label-smoothing")]:
        with pytest.raises(ConfigError, match=fragment):
            TransformerClassifier(model=str(tiny_ckpt), **bad)
    with pytest.raises(ConfigError, match="unknown parameter"):
        TransformerClassifier(model=str(tiny_ckpt), nonsense=1)


def test_label_smoothing_moves_targets_toward_uniform():
    import torch.nn.functional as F

    from nlpkit.models.transformer import training_loss

    logits = torch.tensor([[2.0, -1.0, 0.5], [0.0, 3.0, -2.0]])
    ids = torch.tensor([0, 1])
    onehot = F.one_hot(ids, 3).float()
    smooth = onehot * 0.8 + 0.2 / 3  # cross-entropy's smoothing: spread over the K classes
    expected = -(smooth * logits.log_softmax(dim=1)).sum(dim=1).mean()
    assert torch.isclose(training_loss(logits, ids, multi=False, label_smoothing=0.2), expected)
    assert torch.isclose(training_loss(logits, ids, multi=False), F.cross_entropy(logits, ids))
    # multi-label: every label is a two-class problem, smoothed toward 1/2
    multi = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]])
    assert torch.isclose(training_loss(logits, multi, multi=True, label_smoothing=0.2),
                         F.binary_cross_entropy_with_logits(logits, multi * 0.8 + 0.1))
    assert not torch.isclose(training_loss(logits, multi, multi=True, label_smoothing=0.2),
                             training_loss(logits, multi, multi=True))


# --- the model contract ----------------------------------------------------------------------

def _fit(ckpt, train, valid, **params):
    from nlpkit.models.transformer import TransformerClassifier

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TransformerClassifier(model=str(ckpt), **{**FAST, **params}).fit(train, valid)


def test_single_label_fit_predict_save_load_round_trip(tiny_ckpt, tmp_path):
    from nlpkit.models import load_model

    train, valid, test = agnews_parts()
    model = _fit(tiny_ckpt, train, valid, seed=3, throughput_docs=8)  # speed figures on request
    scores = model.predict_proba(test.texts)
    assert scores.shape == (len(test), train.n_labels)
    assert np.allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    info = model.fit_info()
    assert info["valid_metric_name"] == "accuracy" and 0 <= info["best_valid_metric"] <= 1
    assert info["predict_docs_per_s_batch1"] > 0 and info["predict_docs_per_s_batch32"] > 0
    assert info["throughput_docs"] == 8
    assert 0 < info["train_cpu_seconds"] and info["train_tokens_per_s"] > 0
    assert info["steps"] == int(np.ceil(len(train) / FAST["batch_size"]))
    model.save(tmp_path / "m")
    assert (tmp_path / "m" / "model.safetensors").is_file() and (tmp_path / "m" / "tokenizer.json").is_file()
    config = json.loads((tmp_path / "m" / "config.json").read_text())
    assert [config["id2label"][str(i)] for i in range(train.n_labels)] == train.label_names
    meta = json.loads((tmp_path / "m" / "nlpkit_model.json").read_text())
    assert meta["family"] == "transformer" and meta["long_text"]["mode"] == "truncate"
    again = load_model(tmp_path / "m")
    assert np.allclose(again.predict_proba(test.texts), scores, atol=1e-5)
    assert again.predict_proba([]).shape == (0, train.n_labels)


def test_multi_label_chunks_round_trip_and_sigmoid_scores(tiny_ckpt, tmp_path):
    from nlpkit.models import load_model

    train, valid, test = reuters_parts()
    model = _fit(tiny_ckpt, train, valid, long_text="chunks", pool="max", max_chunks=3, pos_weight=True,
                 layer_decay=0.8, seed=1)
    scores = model.predict_proba(test.texts)
    assert scores.shape == (len(test), train.n_labels)
    assert ((scores >= 0) & (scores <= 1)).all()
    assert not np.allclose(scores.sum(axis=1), 1.0)  # independent sigmoids, not a softmax
    assert model.model_.config.problem_type == "multi_label_classification"
    assert model.fit_info()["n_train_sequences"] > len(train)  # long documents became several chunks
    model.save(tmp_path / "m")
    again = load_model(tmp_path / "m")
    assert again.params["long_text"] == "chunks" and again.params["pool"] == "max"
    assert np.allclose(again.predict_proba(test.texts), scores, atol=1e-5)


def test_same_seed_same_scores_other_seed_other_scores(tiny_ckpt):
    train, valid, test = agnews_parts(n_train=32, n_valid=8, n_test=8)
    a = _fit(tiny_ckpt, train, valid, seed=5).predict_proba(test.texts)
    b = _fit(tiny_ckpt, train, valid, seed=5).predict_proba(test.texts)
    c = _fit(tiny_ckpt, train, valid, seed=6).predict_proba(test.texts)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_precision_auto_follows_the_device_and_is_recorded(tiny_ckpt, monkeypatch):
    from nlpkit.training import precision as training_precision

    train, valid, test = agnews_parts(n_train=16, n_valid=8, n_test=8)
    fp32 = _fit(tiny_ckpt, train, valid, precision="fp32")
    assert fp32.fit_info()["precision"] == "fp32"
    monkeypatch.setattr(training_precision, "cpu_has_native_bf16", lambda: True)
    bf16 = _fit(tiny_ckpt, train, valid)  # auto, on a CPU said to compute bf16 natively
    assert bf16.fit_info()["precision"] == "bf16"
    a, b = fp32.predict_proba(test.texts), bf16.predict_proba(test.texts)
    assert not np.array_equal(a, b) and np.allclose(a, b, atol=0.05)  # bf16 matmuls, close to fp32
    monkeypatch.setattr(training_precision, "cpu_has_native_bf16", lambda: False)
    assert _fit(tiny_ckpt, train, valid).fit_info()["precision"] == "fp32"
    with pytest.raises(ConfigError, match="no native bf16"):
        _fit(tiny_ckpt, train, valid, precision="bf16")


def test_bert_classifiers_train_and_predict_with_the_cls_only_last_layer(tiny_ckpt, tmp_path):
    """The fine-tuned and the reloaded model use the [CLS]-only forward and score as the model's own
    forward does (tests/test_cls_only.py proves the two equal on any BERT)."""
    import torch

    from nlpkit.hf.cls_only import CLS_ONLY
    from nlpkit.models.transformer import TransformerClassifier

    train, valid, test = agnews_parts(n_train=16, n_valid=8, n_test=8)
    model = _fit(tiny_ckpt, train, valid, precision="fp32")
    assert model.fit_info()["forward"] == CLS_ONLY
    model.save(tmp_path / "m")
    back = TransformerClassifier.load(tmp_path / "m")
    assert "forward" in vars(back.model_)  # switched on load too
    ours = back.predict_proba(test.texts)
    del back.model_.forward  # the model's own forward
    with torch.no_grad():
        np.testing.assert_allclose(back.predict_proba(test.texts), ours, rtol=1e-4, atol=1e-6)


def test_head_with_another_number_of_labels_is_reinitialised_with_a_warning(tmp_path):
    from nlpkit.models.transformer import FinetuneWarning, TransformerClassifier

    ckpt = make_tiny_checkpoint(tmp_path / "seven", num_labels=7)
    train, valid, test = agnews_parts(n_train=16, n_valid=8, n_test=4)
    with pytest.warns(FinetuneWarning, match="another number of labels"):
        model = TransformerClassifier(model=str(ckpt), **FAST).fit(train, valid)
    assert model.predict_proba(test.texts).shape == (4, train.n_labels)


def test_label_without_training_example_is_reported_and_scored(tiny_ckpt):
    from nlpkit.models.transformer import FinetuneWarning, TransformerClassifier

    names = ["a", "b", "never"]
    train = make_dataset(["alpha one", "beta two"] * 8, [["a"], ["b"]] * 8, task="multi", label_names=names)
    valid = make_dataset(["alpha", "beta"], [["a"], ["b"]], task="multi", label_names=names)
    with pytest.warns(FinetuneWarning, match="1 label.*never"):
        model = TransformerClassifier(model=str(tiny_ckpt), **FAST).fit(train, valid)
    assert model.fit_info()["labels_without_train_examples"] == ["never"]
    scores = model.predict_proba(["never seen"])
    assert scores.shape == (1, 3) and scores[0, 2] < 0.5  # prior-initialised head: a rare label scores low


def test_time_budget_and_early_stopping_stop_training(tiny_ckpt):
    train, valid, _ = agnews_parts(n_train=48, n_valid=8, n_test=0)
    budget = _fit(tiny_ckpt, train, valid, epochs=5, time_budget=1e-6).fit_info()
    assert budget["steps"] == 1 and "time budget" in budget["stopped"]
    # lr 0 never improves the validation metric: patience 1 stops after the second evaluation
    stale = _fit(tiny_ckpt, train, valid, epochs=5, lr=1e-12, patience=1).fit_info()
    assert "early stop" in stale["stopped"] and stale["steps"] < 5 * 6


def test_predict_before_fit_raises(tiny_ckpt):
    from nlpkit.models.base import NotFittedError
    from nlpkit.models.transformer import TransformerClassifier

    with pytest.raises(NotFittedError):
        TransformerClassifier(model=str(tiny_ckpt)).predict_proba(["x"])


def test_load_refuses_a_model_folder_without_weights(tiny_ckpt, tmp_path):
    from nlpkit.models import load_model

    train, valid, _ = agnews_parts(n_train=16, n_valid=4, n_test=0)
    _fit(tiny_ckpt, train, valid).save(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").unlink()
    with pytest.raises(NlpkitError, match="no model.safetensors"):
        load_model(tmp_path / "m")


DDP_SCRIPT = r"""
import json, os, sys, warnings
sys.path.insert(0, {tests!r}); sys.path.insert(0, {repo!r})
warnings.simplefilter("ignore")
import torch, torch.distributed as dist
from test_finetune import agnews_parts, FAST
from nlpkit.models.transformer import TransformerClassifier
train, valid, test = agnews_parts(n_train=32, n_valid=8, n_test=4)
extra = json.loads(os.environ.get("NLPKIT_TEST_PARAMS", "{{}}"))
m = TransformerClassifier(model={ckpt!r}, **{{**FAST, **extra}}).fit(train, valid)
w = torch.cat([p.detach().flatten() for p in m.model_.parameters()])
print(json.dumps({{"rank": dist.get_rank(), "world": dist.get_world_size(), "steps": m.fit_info()["steps"],
                  "checksum": float(w.double().sum()), "first": float(w[0])}}))
dist.destroy_process_group()
"""


def _two_ranks(tiny_ckpt, tmp_path, params_by_rank=({}, {})) -> list[dict]:
    """The DDP script on 2 gloo processes (rank r with ``params_by_rank[r]`` added); each rank's result."""
    import socket

    script = tmp_path / "ddp.py"
    script.write_text(DDP_SCRIPT.format(tests=str(REPO / "tests"), repo=str(REPO), ckpt=str(tiny_ckpt)))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1",
               "NLPKIT_TEST_PARAMS": json.dumps(params_by_rank[rank])}
        procs.append(subprocess.Popen([sys.executable, str(script)], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    results = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=300)
            assert p.returncode == 0, err[-2000:]
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for p in procs:  # a rank left waiting in a collective would wait forever
            p.kill()
    assert sorted(r["rank"] for r in results) == [0, 1] and all(r["world"] == 2 for r in results)
    return results


@pytest.mark.slow
def test_two_process_gloo_data_parallel_keeps_replicas_in_sync(tiny_ckpt, tmp_path):
    results = _two_ranks(tiny_ckpt, tmp_path)
    assert results[0]["steps"] == results[1]["steps"] == 32 // FAST["batch_size"] // 2
    assert results[0]["checksum"] == results[1]["checksum"]  # gradients were averaged across ranks


@pytest.mark.slow
def test_a_time_budget_stops_every_rank_on_the_same_step(tiny_ckpt, tmp_path):
    # rank 0's budget is over after its first step, rank 1's never is: ranks that decided alone would
    # part ways, and rank 1 would wait forever for rank 0 in its next gradient all-reduce
    results = _two_ranks(tiny_ckpt, tmp_path, ({"time_budget": 1e-9}, {"time_budget": 1e9}))
    assert results[0]["steps"] == results[1]["steps"] == 1
    assert results[0]["checksum"] == results[1]["checksum"]


def test_under_a_time_budget_the_schedule_warms_up_and_decays_within_the_budget(tiny_ckpt, monkeypatch):
    """4 epochs of 10 steps are planned but the budget allows about 12 steps: the learning rate must
    have decayed to near zero by the stop, not be cut off near its peak a third of the way in."""
    import itertools
    import time as time_module

    from nlpkit.models.transformer import TransformerClassifier

    train, valid, _ = agnews_parts(n_train=80, n_valid=8, n_test=0)
    ticks = itertools.count()
    monkeypatch.setattr(time_module, "perf_counter", lambda: next(ticks) * 0.5)  # a clock that runs on calls
    records = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = TransformerClassifier(model=str(tiny_ckpt), **{**FAST, "epochs": 4}, warmup=0.1, time_budget=6.0,
                                      patience=0)
        model.fit(train, valid, progress=records.append)
    info = model.fit_info()
    assert info["stopped"].startswith("time budget") and info["steps"] < info["total_steps_planned"] / 2
    last = [r["eval"] for r in records if "eval" in r][-1]  # the evaluation at the stop
    assert last["step"] == info["steps"] and last["lr_scale"] < 0.25  # step-based: about 0.8 of the peak


def test_plain_callable_progress_gets_step_and_eval_records(tiny_ckpt):
    from nlpkit.models.transformer import LOG_EVERY, TransformerClassifier

    train, valid, _ = agnews_parts(n_train=8 * LOG_EVERY, n_valid=8, n_test=0)
    records = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        TransformerClassifier(model=str(tiny_ckpt), **FAST).fit(train, valid, progress=records.append)
    steps = [r for r in records if "step" in r]
    evals = [r["eval"] for r in records if "eval" in r]
    assert [r["step"] for r in steps] == [LOG_EVERY]
    assert steps[0]["tokens_per_s"] > 0 and steps[0]["loss"] > 0
    assert len(evals) == 1 and evals[0]["step"] == LOG_EVERY and "valid_metric" in evals[0]
