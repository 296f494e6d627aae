"""Pretraining library: packing, masking, schedule, tokenizer, checkpoints, resume, HF round trips."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from nlpkit.errors import ConfigError, DataError, NlpkitError
from nlpkit.pretrain import PretrainConfig, pretrain
from nlpkit.hf.architecture import CLS, MASK, SEP, mask_tokens
from nlpkit.pretrain.output import load_checkpoint, save_checkpoint
from nlpkit.pretrain.packing import BlockSampler, SeededPermutation, pack
from nlpkit.training.distributed import DistContext
from nlpkit.training.schedule import lr_multiplier

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> Path:
    """400 Reuters documents, one per line (about 50k words): enough for a 1,000-piece vocabulary."""
    path = tmp_path_factory.mktemp("corpus") / "reuters400.txt"
    lines = []
    with open(REPO / "data" / "reuters_sample.jsonl", encoding="utf-8") as fh:
        for line in fh:
            lines.append(" ".join(json.loads(line)["text"].split()))
            if len(lines) == 400:
                break
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def small_tokenizer(small_corpus, tmp_path_factory) -> Path:
    """One 1,000-piece tokenizer, trained once for the tests that compare runs exactly."""
    from nlpkit.hf.tokenizer import train_wordpiece

    path = tmp_path_factory.mktemp("tok")
    train_wordpiece(small_corpus.read_text(encoding="utf-8").splitlines(), 1000).save_pretrained(path)
    return path


def micro_config(corpus: Path, out: Path, **kw) -> PretrainConfig:
    """A 1-layer, 32-wide BERT on 32-token blocks: seconds per run on a busy CPU."""
    base = dict(corpus=str(corpus), out=str(out), size=None, layers=1, hidden=32, heads=2, vocab_size=1000,
                max_length=32, batch_size=4, steps=8, eval_every=2, save_every=4, eval_blocks=8, threads=1,
                log_every=1)
    base.update(kw)
    return PretrainConfig(**base)


# --- pure pieces ------------------------------------------------------------------------------

def test_pack_concatenates_with_sep_and_cuts_blocks_without_padding():
    docs = [[10, 11, 12], [13, 14], [15, 16, 17, 18, 19, 20]]
    blocks = pack(docs, max_length=5)
    stream = [10, 11, 12, SEP, 13, 14, SEP, 15, 16, 17, 18, 19, 20, SEP]
    assert blocks.shape == (len(stream) // 4, 5)
    assert (blocks[:, 0] == CLS).all()
    assert blocks[:, 1:].reshape(-1).tolist() == stream[: blocks.shape[0] * 4]


def test_mask_tokens_rate_8010_10_and_specials_untouched():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 1000, (64, 128))
    ids[:, 0] = CLS
    inputs, labels = mask_tokens(ids, vocab_size=1000, mlm_prob=0.15, generator=g)
    chosen = labels != -100
    assert abs(chosen.float().mean().item() - 0.15 * 127 / 128) < 0.01
    assert not chosen[:, 0].any()
    assert (labels[chosen] == ids[chosen]).all()
    masked = (inputs == MASK) & chosen
    kept = (inputs == ids) & chosen
    assert abs(masked.sum().item() / chosen.sum().item() - 0.8) < 0.03
    assert abs(kept.sum().item() / chosen.sum().item() - 0.1) < 0.03  # (+ random draws equal to the token: rare)
    assert (inputs[~chosen] == ids[~chosen]).all()


def test_whole_word_masking_masks_all_pieces_of_a_word_together():
    g = torch.Generator().manual_seed(1)
    word_start = torch.ones(100, dtype=torch.bool)
    word_start[50:] = False  # ids >= 50 are "##" continuation pieces
    row = [CLS] + [10, 60, 61, 11, 12, 62] * 20
    ids = torch.tensor([row] * 32)
    _, labels = mask_tokens(ids, vocab_size=100, mlm_prob=0.3, generator=g, word_start=word_start)
    chosen = labels != -100
    assert chosen.any()
    for r in range(ids.shape[0]):
        for start in range(1, ids.shape[1], 6):
            # word [10, 60, 61] is masked entirely or not at all; so is [12, 62]
            assert len(set(chosen[r, start:start + 3].tolist())) == 1
            assert len(set(chosen[r, start + 4:start + 6].tolist())) == 1


def lr_at(cfg: PretrainConfig, step: int, progress: float) -> float:
    """The learning rate as the pretraining loop asks the shared schedule for it."""
    return lr_multiplier(step, progress=progress, warmup=cfg.warmup, shape=cfg.schedule, min_ratio=cfg.min_lr_ratio,
                         scale=cfg.lr)


def test_lr_schedule_warms_up_then_decays_to_the_floor():
    cfg = PretrainConfig(corpus="c", out="o", lr=1e-3, warmup=10, min_lr_ratio=0.1, steps=100).validate()
    lrs = [lr_at(cfg, s, s / 100) for s in range(100)]
    assert lrs[0] < lrs[5] < lrs[9]
    assert max(lrs) == pytest.approx(lrs[9], rel=0.1)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lr_at(cfg, 100, 1.0) == pytest.approx(1e-4)
    cos = PretrainConfig(corpus="c", out="o", lr=1e-3, warmup=0.0, schedule="cosine", steps=100).validate()
    assert lr_at(cos, 50, 0.5) == pytest.approx(1e-4 + 0.9e-3 * 0.5)


def test_block_sampler_ranks_are_disjoint_and_position_resumes():
    seen = []
    for rank in range(2):
        s = BlockSampler(40, 4, DistContext(rank=rank, world_size=2), seed=3)
        seen.append(np.concatenate([s.next_indices() for _ in range(5)]))
    assert not set(seen[0]) & set(seen[1])
    s = BlockSampler(40, 4, DistContext(), seed=3)
    for _ in range(13):
        s.next_indices()
    resumed = BlockSampler(40, 4, DistContext(), seed=3, epoch=s.epoch, cursor=s.cursor)
    assert np.array_equal(s.next_indices(), resumed.next_indices())


@pytest.mark.parametrize("n", [1, 2, 3, 40, 1023, 1024, 1025, 50_000])
def test_seeded_permutation_is_a_bijection_fixed_by_its_seed(n):
    values = SeededPermutation(n, [3, 0])[np.arange(n)]
    assert np.array_equal(np.sort(values), np.arange(n))
    assert np.array_equal(SeededPermutation(n, [3, 0])[: n // 2], values[: n // 2])  # slices agree with indices
    if n >= 1000:
        assert not np.array_equal(SeededPermutation(n, [3, 1])[np.arange(n)], values)  # another epoch, another order
        # shuffled: no trace of the identity order, nor of neighbours staying neighbours
        assert abs(np.corrcoef(np.arange(n), values)[0, 1]) < 0.1
        assert abs(np.corrcoef(values[:-1], values[1:])[0, 1]) < 0.1


def test_seeded_permutation_of_a_huge_range_needs_no_table():
    import tracemalloc

    tracemalloc.start()
    block = SeededPermutation(10**11, [0, 0])[5_000_000_000:5_000_000_016]  # 12.8 trillion tokens at length 128
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(set(block.tolist())) == 16 and block.max() < 10**11 and peak < 1_000_000


def test_presets_follow_turc_et_al():
    for size, (layers, hidden) in {"tiny": (2, 128), "mini": (4, 256), "small": (4, 512), "medium": (8, 512),
                                   "base": (12, 768)}.items():
        c = PretrainConfig(corpus="c", out="o", size=size).validate()
        assert (c.layers, c.hidden, c.heads, c.intermediate) == (layers, hidden, hidden // 64, 4 * hidden)


@pytest.mark.parametrize("kw, fragment", [
    (dict(max_length=10**6), "--max-length 1000000 is out of range"),
    (dict(max_length=8), "--max-length 8 is out of range"),
    (dict(hidden=100, heads=3, size=None, layers=1), "not divisible by --heads"),
    (dict(steps=10, epochs=1.0), "only one of --steps, --epochs, --time-budget"),
    (dict(mlm_prob=1.5), "--mlm-prob"),
    (dict(arch="gpt"), "--arch 'gpt' is unknown"),
    (dict(size="huge"), "--size 'huge' is unknown"),
])
def test_config_rejects_bad_options_up_front(kw, fragment):
    with pytest.raises(ConfigError, match=None) as exc:
        PretrainConfig(corpus="c", out="o", **kw).validate()
    assert fragment in str(exc.value)


# --- tokenizer --------------------------------------------------------------------------------

def test_wordpiece_special_ids_and_fertility_against_a_reference(small_corpus):
    from nlpkit.hf.tokenizer import fertility, train_wordpiece

    texts = small_corpus.read_text(encoding="utf-8").splitlines()
    tok = train_wordpiece(texts, 1000)
    assert tok.convert_ids_to_tokens([0, 1, 2, 3, 4]) == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert tok("Wheat!")["input_ids"][0] == CLS and 1 not in tok("Wheat!")["input_ids"]  # '!' in the alphabet
    f_small = fertility(tok, texts[:50])
    f_big = fertility(train_wordpiece(texts, 4000), texts[:50])
    assert f_big["words"] == f_small["words"]  # same pre-tokenizer: same words
    assert 1.0 <= f_big["tokens_per_word"] < f_small["tokens_per_word"]  # a bigger vocabulary splits less
    assert f_big["share_words_split"] < f_small["share_words_split"]


def test_continuation_pieces_cover_word_inner_characters_after_normalisation():
    from tokenizers import normalizers, pre_tokenizers

    from nlpkit.hf.tokenizer import _continuation_pieces

    norm = normalizers.BertNormalizer(lowercase=True, strip_accents=None)  # BERT strips accents when lower-casing
    pieces = _continuation_pieces(["Héllo, WÖRLD!", "naïve 42"], norm, pre_tokenizers.BertPreTokenizer())
    assert pieces == sorted(pieces)
    assert set(pieces) == {f"##{c}" for c in "helowrdnaiv42"}  # punctuation is split off, never inside a word


@pytest.mark.slow
def test_wordpiece_training_gives_the_same_vocabulary_in_every_process(tmp_path):
    # 8,000 pieces on the bundled sample ends among many merges of equal frequency; before the
    # continuation pieces were numbered up front, about 3 processes in 8 learnt different pieces.
    import subprocess
    import sys

    script = ("import sys; from nlpkit.data import read_dataset; from nlpkit.hf.tokenizer import train_wordpiece; "
              "v = train_wordpiece(list(read_dataset(sys.argv[1]).texts), 8000).get_vocab(); "
              "print(sorted(v.items()))")
    corpus = str(REPO / "data" / "reuters_sample.jsonl")
    procs = [subprocess.Popen([sys.executable, "-c", script, corpus], stdout=subprocess.PIPE, text=True) for _ in range(6)]
    vocabularies = [p.communicate()[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(set(vocabularies)) == 1


def test_vocab_too_large_for_corpus_is_a_data_error(small_corpus):
    from nlpkit.hf.tokenizer import train_wordpiece

    with pytest.raises(DataError, match="corpus too small for --vocab-size 100000"):
        train_wordpiece(small_corpus.read_text(encoding="utf-8").splitlines()[:20], 100000)


def test_wordpiece_training_reads_a_streamed_corpus_twice(small_corpus):
    """A streamed corpus is read again on every pass: one survey (word count, characters) and
    the trainer's own pass, not a pass per question."""
    from nlpkit.hf.tokenizer import train_wordpiece

    class Passes:
        def __init__(self, texts):
            self.texts, self.passes = texts, 0

        def __len__(self):
            return len(self.texts)

        def __iter__(self):
            self.passes += 1
            return iter(self.texts)

    corpus = Passes(small_corpus.read_text(encoding="utf-8").splitlines())
    train_wordpiece(corpus, 200)
    assert corpus.passes == 2


def test_vocab_check_counts_chinese_characters_not_clauses():
    from nlpkit.hf.tokenizer import MIN_WORDS_PER_VOCAB_ENTRY, check_vocab_fits

    # 300 sentences of 20 characters and no spaces: 6,000 words as BERT's pre-tokenizer sees them
    # (each character one), though only 300 runs between spaces
    texts = ["我们今天在北京看到了一场非常精彩的足球比赛"[:20]] * 300
    check_vocab_fits(texts, 6000 // MIN_WORDS_PER_VOCAB_ENTRY)
    with pytest.raises(DataError, match="6000 words, need at least"):
        check_vocab_fits(texts, 6000 // MIN_WORDS_PER_VOCAB_ENTRY + 1)


# --- checkpoints ------------------------------------------------------------------------------

def test_checkpoint_save_is_atomic_a_failed_save_keeps_the_previous(tmp_path, monkeypatch):
    import safetensors.torch

    path = tmp_path / "checkpoints" / "checkpoint.safetensors"
    good = {"model": {"w": torch.ones(3)}, "optimizer": {}, "step": 4, "config": "{}", "data": {}, "rng": {}}
    save_checkpoint(path, good)

    def broken_save(tensors, filename, metadata=None):
        with open(filename, "wb") as fh:
            fh.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(safetensors.torch, "save_file", broken_save)
    with pytest.raises(OSError):
        save_checkpoint(path, {**good, "step": 8})
    assert load_checkpoint(path)["step"] == 4
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]


@pytest.mark.parametrize("content", [b"\x80\x02garbage", b""])
def test_corrupt_checkpoint_is_a_clear_error(tmp_path, content):
    path = tmp_path / "checkpoint.safetensors"
    path.write_bytes(content)
    with pytest.raises(NlpkitError, match="is unreadable or not an nlpkit state file"):
        load_checkpoint(path)


def test_incomplete_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "checkpoint.safetensors"
    save_checkpoint(path, {"model": {"w": torch.ones(3)}, "step": 4})
    with pytest.raises(NlpkitError, match="is incomplete \\(no 'optimizer'\\)"):
        load_checkpoint(path)


# --- training ---------------------------------------------------------------------------------

class _CrashAt:
    """A progress object that raises KeyboardInterrupt once training reaches ``step``: a killed run."""

    def __init__(self, step: int):
        self.step = step

    def add_task(self, *a, **k):
        return 0

    def update(self, task, completed=None, **k):
        if completed is not None and completed >= self.step:
            raise KeyboardInterrupt


def test_resume_reaches_the_same_loss_as_an_uninterrupted_run(small_corpus, small_tokenizer, tmp_path):
    straight = pretrain(micro_config(small_corpus, tmp_path / "a", tokenizer=str(small_tokenizer)), record_run=False)
    cfg = micro_config(small_corpus, tmp_path / "b", tokenizer=str(small_tokenizer))
    with pytest.raises(KeyboardInterrupt):
        pretrain(cfg, progress=_CrashAt(6), record_run=False)  # checkpoint at 4, killed at 6
    assert load_checkpoint(tmp_path / "b" / "checkpoints" / "checkpoint.safetensors")["step"] == 4
    resumed = pretrain(cfg, resume=True, record_run=False)
    assert resumed.report["steps"] == straight.report["steps"] == 8
    assert abs(resumed.report["final_eval_loss"] - straight.report["final_eval_loss"]) < 1e-5
    assert abs(resumed.report["final_train_loss"] - straight.report["final_train_loss"]) < 1e-5
    for (name, a), (_, b) in zip(straight.model.named_parameters(), resumed.model.named_parameters()):
        assert torch.allclose(a, b, atol=1e-6), name


@pytest.mark.slow
def test_compile_trains_like_eager_and_saves_plain_weights(small_corpus, small_tokenizer, tmp_path):
    from safetensors.torch import load_file

    eager = pretrain(micro_config(small_corpus, tmp_path / "eager", tokenizer=str(small_tokenizer), steps=4),
                     record_run=False)
    compiled = pretrain(micro_config(small_corpus, tmp_path / "compiled", tokenizer=str(small_tokenizer), steps=4,
                                     compile=True), record_run=False)
    # inductor fuses kernels, so the sums round differently: close, not equal
    assert compiled.report["final_eval_loss"] == pytest.approx(eager.report["final_eval_loss"], rel=1e-3)
    saved = load_file(tmp_path / "compiled" / "model.safetensors")
    assert sorted(saved) == sorted(load_file(tmp_path / "eager" / "model.safetensors"))  # no "_orig_mod." prefix
    for name, value in saved.items():
        torch.testing.assert_close(value, compiled.model.state_dict()[name])


def test_output_folder_loads_with_auto_classes_and_run_is_recorded(small_corpus, tmp_path, runs_dir):
    from transformers import AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer

    from nlpkit.runs import list_runs

    res = pretrain(micro_config(small_corpus, tmp_path / "m", steps=4, whole_word_mask=True))
    out = tmp_path / "m"
    for folder in (out, out / "last"):
        tok = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForMaskedLM.from_pretrained(folder)
        enc = tok(["oil prices rose", "wheat"], padding=True, return_tensors="pt")
        assert model(**enc).logits.shape[-1] == len(tok)
    assert tok.model_max_length == 32
    clf = AutoModelForSequenceClassification.from_pretrained(out, num_labels=3)
    assert clf(**enc).logits.shape == (2, 3)
    # the best folder holds the best held-out loss
    best = AutoModelForMaskedLM.from_pretrained(out)
    rep = json.loads((out / "pretrain.json").read_text())
    assert rep["best_eval_loss"] == min(e["loss"] for e in rep["history"]["eval"])
    assert rep["corpus"]["documents"] + rep["corpus"]["heldout_documents"] == 400
    assert best.config.hidden_dropout_prob == 0.1  # fine-tuning gets dropout back
    runs = list_runs(runs_dir, kind="pretrain")
    assert [r.name for r in runs] == [res.run_name]
    assert runs[0].info["data"]["corpus_sha256"] == rep["corpus"]["fingerprint"]


def test_modernbert_long_context_trains_and_loads_for_classification(tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    rng = np.random.default_rng(0)
    words = ["".join(rng.choice(list("abcdefghij"), size=rng.integers(2, 7))) for _ in range(300)]
    docs = [" ".join(rng.choice(words, size=2000)) for _ in range(16)]
    corpus = tmp_path / "long.txt"
    corpus.write_text("\n".join(docs) + "\n")
    cfg = PretrainConfig(corpus=str(corpus), out=str(tmp_path / "mb"), arch="modernbert", size=None, layers=2,
                         hidden=32, heads=2, vocab_size=400, max_length=2048, batch_size=1, steps=3,
                         eval_every=3, eval_blocks=1, threads=1, heldout_docs=2)
    res = pretrain(cfg, record_run=False)
    assert math.isfinite(res.report["final_eval_loss"])
    tok = AutoTokenizer.from_pretrained(tmp_path / "mb")
    clf = AutoModelForSequenceClassification.from_pretrained(tmp_path / "mb", num_labels=2)
    assert clf.config.model_type == "modernbert" and clf.config.max_position_embeddings == 2048
    assert clf.config.pad_token_id == 0 and clf.config.cls_token_id == CLS and clf.config.sep_token_id == SEP
    enc = tok([docs[0]], truncation=True, return_tensors="pt")
    assert enc["input_ids"].shape[1] == 2048
    assert clf(**enc).logits.shape == (1, 2)


@pytest.mark.slow
def test_tiny_preset_learns_well_below_the_unigram_entropy_on_the_bundled_sample(tmp_path):
    """A model that ignores context scores the unigram entropy of the held-out tokens; a trained
    MLM must get well below it.  ModernBERT (pre-LN) leaves the unigram plateau much sooner than
    post-LN BERT.  The settings are the README walkthrough's (tiny preset, batch 32, vocabulary
    4,000, default learning rate), 500 steps: about 45 s on 2 quiet cores."""
    cfg = PretrainConfig(corpus=str(REPO / "data" / "reuters_sample.jsonl"), out=str(tmp_path / "tiny"),
                         size="tiny", arch="modernbert", vocab_size=4000, max_length=128, batch_size=32,
                         steps=500, eval_every=100, save_every=1000, threads=1, seed=0)
    res = pretrain(cfg, record_run=False)
    h = res.report["heldout_unigram_entropy"]
    assert 4.0 < h < 9.0
    losses = [e["loss"] for e in res.history["eval"]]
    assert losses[-1] < losses[0]
    assert res.report["final_eval_loss"] < 0.85 * h, (res.report["final_eval_loss"], h)


def test_split_corpus_reads_train_and_valid_never_test(tmp_path):
    from nlpkit.data import read_dataset, write_split
    from nlpkit.pretrain.corpus import read_corpus

    ds = read_dataset(REPO / "data" / "reuters_sample.jsonl")
    split = tmp_path / "split"
    write_split(split, {"train": ds.subset(range(0, 100)), "valid": ds.subset(range(100, 120)),
                        "test": ds.subset(range(120, 150))}, {"method": "test"})
    corpus = read_corpus(split)
    assert corpus.kind == "split" and corpus.heldout_from == "valid"
    assert corpus.train == ds.texts[:100] and corpus.heldout == ds.texts[100:120]
    test_texts = set(ds.texts[120:150]) - set(ds.texts[:120])
    assert not test_texts & set(corpus.train + corpus.heldout)


@pytest.mark.slow
def test_time_budget_stops_training_and_schedules_by_elapsed_time(small_corpus, tmp_path):
    res = pretrain(micro_config(small_corpus, tmp_path / "t", steps=None, time_budget=2.0, eval_every=1000),
                   record_run=False)
    assert res.report["steps"] >= 1
    assert res.report["throughput"]["train_seconds"] >= 2.0
    lrs = [r["lr"] for r in res.history["train"]]
    assert lrs[-1] < max(lrs)  # warmed up, then decayed with elapsed time


def test_dataset_corpus_without_labels_is_read(tmp_path):
    # An unlabelled JSONL corpus (texts only) is the usual pretraining input.
    from nlpkit.pretrain.corpus import _read_dataset_texts

    path = tmp_path / "corpus.jsonl"
    path.write_text('{"text": "first document"}\n{"text": "second document"}\n', encoding="utf-8")
    assert _read_dataset_texts(path, {}) == ["first document", "second document"]


def _bert_style_tokenizer(path: Path):
    """A tokenizer laid out like bert-base-uncased: [PAD] 0, [unused*], [UNK] 100, [CLS] 101, [SEP] 102, [MASK] 103."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += [f"w{i}" for i in range(400)]
    backend = Tokenizer(models.WordPiece(vocab={piece: i for i, piece in enumerate(vocab)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]",
                                        cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")
    tokenizer.save_pretrained(path)
    return tokenizer


def test_special_ids_come_from_the_tokenizer(tmp_path):
    from nlpkit.hf.architecture import TokenIds
    from nlpkit.hf.tokenizer import train_wordpiece

    own = train_wordpiece([f"word{i} text{i % 7} more" for i in range(1000)], 200)
    assert TokenIds.of(own) == TokenIds()  # nlpkit's own tokenizer keeps the fixed ids 0-4
    ids_of = TokenIds.of(_bert_style_tokenizer(tmp_path / "bert"))
    assert (ids_of.cls, ids_of.sep, ids_of.mask, ids_of.pad) == (101, 102, 103, 0)
    assert ids_of.special == (0, 100, 101, 102, 103)


def test_packing_and_masking_use_a_hub_tokenizers_special_ids(tmp_path):
    from nlpkit.hf.architecture import TokenIds

    tokenizer = _bert_style_tokenizer(tmp_path / "bert")
    ids_of, vocab = TokenIds.of(tokenizer), len(tokenizer)
    docs = [list(range(104 + i, 104 + i + 30)) for i in range(40)]
    blocks = pack(docs, 16, ids_of)
    assert (blocks[:, 0] == 101).all() and (blocks == 102).any() and not (blocks == CLS).any()
    g = torch.Generator().manual_seed(0)
    inputs, labels = mask_tokens(blocks, vocab_size=vocab, mlm_prob=0.3, generator=g, ids_of=ids_of)
    chosen = labels != -100
    assert not chosen[(blocks == 101) | (blocks == 102)].any()  # [CLS] and [SEP] are never chosen
    assert ((inputs == 103) & chosen).float().sum() / chosen.sum() > 0.7  # [MASK] is 103, not 4
    assert not ((inputs == MASK) & chosen).any()
    replaced = chosen & (inputs != 103) & (inputs != blocks)
    assert replaced.any() and not torch.isin(inputs[replaced], torch.tensor(ids_of.special)).any()


def test_own_tokenizer_masks_exactly_as_before():
    """The lookup tables draw the same random tokens as randint(5, V) did: resumed runs stay exact."""
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    ids = torch.randint(5, 700, (8, 64))
    a = mask_tokens(ids, vocab_size=700, mlm_prob=0.2, generator=g1)
    u = torch.rand(ids.shape, generator=g2)
    r = torch.rand(ids.shape, generator=g2)
    rand_tok = torch.randint(5, 700, ids.shape, generator=g2)
    pick = u < 0.2
    expected = torch.where(pick & (r < 0.8), torch.full_like(ids, MASK), ids)
    expected = torch.where(pick & (r >= 0.8) & (r < 0.9), rand_tok, expected)
    assert torch.equal(a[0], expected) and torch.equal(a[1], torch.where(pick, ids, torch.full_like(ids, -100)))


def test_vocab_advice_never_names_a_size_that_cannot_fit():
    from nlpkit.hf.tokenizer import check_vocab_fits

    with pytest.raises(DataError, match=r"add text \(the smallest --vocab-size, 64, needs 640 words\)"):
        check_vocab_fits(["a few words only"] * 10, 64)
    with pytest.raises(DataError, match="use --vocab-size 100 or less"):
        check_vocab_fits(["ten words " * 5] * 100, 200)
