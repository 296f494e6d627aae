"""The token store: a corpus tokenised once into memory-mapped shards, reused by every run that reads
the same corpus with the same tokenizer.

Layout (``ROOT/<fingerprint>/``, ROOT being ``--out/token_store`` or ``--store DIR``)::

    meta.json                         written last: shards, counts, the corpus description
    train-00000.tokens.npy            one flat uint16 (vocabulary <= 65,536) or uint32 array per shard:
                                      each document's tokens followed by [SEP], as pack() streams them
    train-00000.offsets.npy           int64, documents + 1 entries: where each document starts
    heldout-00000.tokens.npy, ...     the held-out documents, the same way
    heldout_sample.jsonl              the first held-out texts, for the tokenizer fertility report

The fingerprint covers the corpus files' bytes, how they are read and the held-out rule
(:meth:`CorpusStream.fingerprint`) and the tokenizer's full definition, so a store is never
reused for other tokens. A store is built in a hidden sibling folder and renamed into place
whole: a folder with that name is complete, or damaged by something other than nlpkit (then
:func:`open_store` says so in one line: every shard's shape and CRC-32 are checked against
meta.json, so a shard cut, swapped or altered in place is found before training reads it). Shards of documents are tokenised in worker
processes (``num_proc``), at most ``2 x num_proc`` shards in flight, so memory does not grow
with the corpus. This module imports neither torch nor transformers.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import shutil
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from nlpkit.errors import DataError, NlpkitError
from nlpkit.pretrain.corpus import CorpusStream

STORE_VERSION = 2  # 2: a CRC-32 of each shard's arrays in meta.json
META = "meta.json"
HELDOUT_SAMPLE = "heldout_sample.jsonl"
SHARD_CHARS = 8 * 2**20  # characters of text per shard: tokens of a few MB, seconds of work
ENCODE_BATCH = 256  # documents per encode_batch call: HF Encodings cost ~100 bytes a token
HELDOUT_SAMPLE_DOCS = 5000  # held-out texts kept for the fertility report ...
HELDOUT_SAMPLE_CHARS = 4 * 2**20  # ... up to this many characters
PARALLEL_MIN_BYTES = 2 * SHARD_CHARS  # smaller corpora are tokenised in this process


def default_num_proc() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of the tokenizer's full definition (normaliser, pre-tokeniser, vocabulary)."""
    return hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode("utf-8")).hexdigest()


def store_fingerprint(corpus_fingerprint: str, tokenizer) -> str:
    key = {"version": STORE_VERSION, "corpus": corpus_fingerprint, "tokenizer": tokenizer_fingerprint(tokenizer),
           "sep": tokenizer.sep_token_id}
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode("utf-8")).hexdigest()


# --- reading ------------------------------------------------------------------------------------

@dataclass
class Shard:
    """One shard's two arrays: where they are on disk (``.npy``: a header, then the raw values)."""

    tokens: Path
    offsets: Path
    n_tokens: int
    n_docs: int
    dtype: np.dtype
    tokens_at: int  # byte offset of the values after the .npy header
    offsets_at: int

    def tokens_map(self) -> np.ndarray:
        return np.memmap(self.tokens, dtype=self.dtype, mode="r", offset=self.tokens_at, shape=(self.n_tokens,))

    def offsets_map(self) -> np.ndarray:
        return np.memmap(self.offsets, dtype=np.int64, mode="r", offset=self.offsets_at, shape=(self.n_docs + 1,))


@dataclass
class StorePart:
    """The training or held-out documents of a store: one token stream over memory-mapped shards.

    Every read maps the shard afresh and drops the map afterwards (nanoGPT's train.py does the same:
    pages of a long-lived np.memmap stay counted in the process's memory as training touches them).
    """

    name: str
    shards: list[Shard]
    _starts: np.ndarray = field(default=None, repr=False)

    def __post_init__(self):
        self._starts = np.concatenate([[0], np.cumsum([s.n_tokens for s in self.shards], dtype=np.int64)])

    @property
    def documents(self) -> int:
        return int(sum(s.n_docs for s in self.shards))

    @property
    def stream_tokens(self) -> int:
        """Tokens in the stream, one [SEP] per document included."""
        return int(self._starts[-1])

    def read(self, start: int, stop: int) -> np.ndarray:
        """Stream tokens ``[start, stop)`` (across shard boundaries), as int64."""
        out = np.empty(stop - start, dtype=np.int64)
        shard = int(np.searchsorted(self._starts, start, side="right")) - 1
        pos = start
        while pos < stop:
            s0 = int(self._starts[shard])
            take = min(stop, int(self._starts[shard + 1])) - pos
            out[pos - start:pos - start + take] = self.shards[shard].tokens_map()[pos - s0:pos - s0 + take]
            pos += take
            shard += 1
        return out

    def length_counts(self) -> np.ndarray:
        """How many documents have each number of tokens (index = tokens, [SEP] not counted): the
        length distribution in memory that grows with the longest document, not with their number."""
        counts = np.zeros(1, dtype=np.int64)
        for s in self.shards:
            offsets = s.offsets_map()
            for i in range(0, max(len(offsets) - 1, 0), 1 << 22):
                c = np.bincount(np.diff(offsets[i:i + (1 << 22) + 1]) - 1)
                if len(c) > len(counts):
                    counts = np.pad(counts, (0, len(c) - len(counts)))
                counts[:len(c)] += c
        return counts

    def token_counts(self, sep: int) -> np.ndarray:
        """How often each token id occurs in the documents (the [SEP] after each not counted)."""
        counts = np.zeros(0, dtype=np.int64)
        for s in self.shards:
            t = s.tokens_map()
            for i in range(0, len(t), 1 << 22):
                c = np.bincount(t[i:i + (1 << 22)])
                if len(c) > len(counts):
                    counts = np.pad(counts, (0, len(c) - len(counts)))
                counts[:len(c)] += c
            del t
        if sep < len(counts):
            counts[sep] -= self.documents
        return counts


@dataclass
class TokenStore:
    path: Path
    meta: dict
    train: StorePart
    heldout: StorePart
    reused: bool = False

    def heldout_sample(self) -> list[str]:
        with open(self.path / HELDOUT_SAMPLE, encoding="utf-8") as fh:
            return [json.loads(line) for line in fh]


def _crc32(values: np.ndarray, chunk: int = 1 << 24) -> int:
    """CRC-32 of an array's bytes (a memory map read a chunk at a time)."""
    flat = values.reshape(-1)
    crc = 0
    for i in range(0, len(flat), chunk):
        crc = zlib.crc32(np.ascontiguousarray(flat[i:i + chunk]).view(np.uint8), crc)
    return crc


def _damaged(path: Path, detail: str) -> DataError:
    return DataError(f"token store {path} is damaged ({detail}); delete that folder and run again to rebuild it.")


def open_store(path: Path, *, reused: bool = True) -> TokenStore:
    """Open a complete store, checking every shard against meta.json (one-line DataError if not)."""
    path = Path(path)
    try:
        meta = json.loads((path / META).read_text(encoding="utf-8"))
        version, dtype, parts = meta["version"], np.dtype(meta["dtype"]), meta["parts"]
    except FileNotFoundError:
        raise _damaged(path, f"no {META}") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _damaged(path, f"unreadable {META}: {type(exc).__name__}") from None
    if version != STORE_VERSION:
        raise _damaged(path, f"written by store format {version}, this nlpkit reads {STORE_VERSION}")
    opened = {}
    for name in ("train", "heldout"):
        shards = []
        try:
            listed = [(str(s["file"]), int(s["tokens"]), int(s["documents"]), [int(c) for c in s["crc32"]])
                      for s in parts[name]["shards"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise _damaged(path, f"{META} lists no valid {name} shards: {type(exc).__name__}") from None
        for file, n_tokens, n_docs, crc in listed:
            try:
                t = np.load(path / f"{file}.tokens.npy", mmap_mode="r")
                o = np.load(path / f"{file}.offsets.npy", mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise _damaged(path, f"shard {file}: {type(exc).__name__}: {str(exc)[:80]}") from None
            if t.dtype != dtype or t.shape != (n_tokens,) or o.shape != (n_docs + 1,) \
                    or int(o[0]) != 0 or int(o[-1]) != len(t):
                raise _damaged(path, f"shard {file} does not match {META}")
            if [_crc32(t), _crc32(o)] != crc:
                raise _damaged(path, f"shard {file} does not match its CRC-32 in {META}: changed since it was written")
            shards.append(Shard(Path(t.filename), Path(o.filename), n_tokens, n_docs, dtype, t.offset, o.offset))
            del t, o
        opened[name] = StorePart(name, shards)
    if not (path / HELDOUT_SAMPLE).is_file():
        raise _damaged(path, f"no {HELDOUT_SAMPLE}")
    return TokenStore(path=path, meta=meta, train=opened["train"], heldout=opened["heldout"], reused=reused)


# --- building -----------------------------------------------------------------------------------

_WORKER: dict = {}


def _init_worker(tokenizer_json: str, sep: int, dtype: str) -> None:
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer_json)
    backend.no_truncation()  # a tokenizer saved with truncation would drop the tail of long documents
    backend.no_padding()
    _WORKER.update(backend=backend, sep=sep, dtype=np.dtype(dtype))


def _encode_shard(job: tuple) -> dict:
    """Tokenise one shard of documents and write its two arrays into the store's build folder."""
    from nlpkit.text import count_words

    folder, name, texts = job
    backend, sep, dtype = _WORKER["backend"], _WORKER["sep"], _WORKER["dtype"]
    # encode_batch_fast (tokenizers >= 0.20) skips the character offsets nobody reads here
    encode = getattr(backend, "encode_batch_fast", backend.encode_batch)
    pieces, lengths = [], np.empty(len(texts), dtype=np.int64)
    for i in range(0, len(texts), ENCODE_BATCH):
        for j, enc in enumerate(encode(texts[i:i + ENCODE_BATCH], add_special_tokens=False), start=i):
            ids = enc.ids
            ids.append(sep)
            pieces.append(np.array(ids, dtype=dtype))
            lengths[j] = len(ids)
    tokens = np.concatenate(pieces) if pieces else np.empty(0, dtype=dtype)
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    np.save(Path(folder) / f"{name}.tokens.npy", tokens)
    np.save(Path(folder) / f"{name}.offsets.npy", offsets)
    return {"file": name, "documents": len(texts), "tokens": int(len(tokens)), "crc32": [_crc32(tokens), _crc32(offsets)],
            "words": sum(count_words(t) for t in texts), "characters": sum(len(t) for t in texts),
            "bytes": sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)}


class _Runner:
    """Runs shard jobs in this process or in worker processes, keeping at most ``2 x num_proc`` in flight."""

    def __init__(self, num_proc: int, init_args: tuple, on_done: Callable[[dict], None]):
        self.on_done, self.pool = on_done, None
        self.pending: collections.deque = collections.deque()
        self.window = 2 * num_proc
        if num_proc > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            # spawn, not fork: a forked child would carry the parent's torch and transformers
            # (hundreds of MB, counted again per process) and a Rayon pool that cannot survive a fork;
            # a spawned one imports this module only. One thread each: the processes are the parallelism.
            previous = os.environ.get("TOKENIZERS_PARALLELISM")
            os.environ["TOKENIZERS_PARALLELISM"] = "false"
            try:
                self.pool = ProcessPoolExecutor(num_proc, mp_context=multiprocessing.get_context("spawn"),
                                                initializer=_init_worker, initargs=init_args)
                self.pool.submit(int).result()  # start the workers now, while the variable is set
            except Exception as exc:  # noqa: BLE001 - BrokenProcessPool, or an OSError starting processes
                self.close()
                raise NlpkitError(f"the processes that tokenise the corpus failed to start ({type(exc).__name__}); "
                                  "call nlpkit from a script guarded by `if __name__ == \"__main__\":`, "
                                  "or pass --num-proc 1.") from None
            finally:
                if previous is None:
                    os.environ.pop("TOKENIZERS_PARALLELISM", None)
                else:
                    os.environ["TOKENIZERS_PARALLELISM"] = previous
        else:
            _init_worker(*init_args)

    def submit(self, job: tuple) -> None:
        if self.pool is None:
            self.on_done(_encode_shard(job))
            return
        self.pending.append(self.pool.submit(_encode_shard, job))
        while len(self.pending) >= self.window:
            self.on_done(self.pending.popleft().result())

    def finish(self) -> None:
        while self.pending:
            self.on_done(self.pending.popleft().result())

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None


def _build(folder: Path, corpus: CorpusStream, tokenizer, *, num_proc: int,
           on_progress: Callable[[int, int], None] | None) -> dict:
    """Tokenise ``corpus`` into ``folder``; returns the meta record."""
    started = time.perf_counter()
    vocab = len(tokenizer)
    dtype = "uint16" if vocab <= 2**16 else "uint32"
    sep = tokenizer.sep_token_id
    if corpus.input_bytes() < PARALLEL_MIN_BYTES:
        num_proc = 1
    shards: dict[str, list[dict]] = {"train": [], "heldout": []}
    done = {"documents": 0, "bytes": 0}

    def on_done(rec: dict) -> None:
        shards["train" if rec["file"].startswith("train") else "heldout"].append(rec)
        done["documents"] += rec["documents"]
        done["bytes"] += rec["bytes"]
        if on_progress is not None:
            on_progress(done["documents"], done["bytes"])

    runner = _Runner(num_proc, (tokenizer.backend_tokenizer.to_str(), sep, dtype), on_done)
    buffers: dict[str, list[str]] = {"train": [], "heldout": []}
    chars = {"train": 0, "heldout": 0}
    count = {"train": 0, "heldout": 0}
    sample, sample_chars = [], 0

    def flush(part: str) -> None:
        if buffers[part]:
            runner.submit((str(folder), f"{part}-{count[part]:05d}", buffers[part]))
            count[part] += 1
            buffers[part], chars[part] = [], 0

    try:
        for held, text in corpus.labelled():
            part = "heldout" if held else "train"
            buffers[part].append(text)
            chars[part] += len(text)
            if held and len(sample) < HELDOUT_SAMPLE_DOCS and sample_chars < HELDOUT_SAMPLE_CHARS:
                sample.append(text)
                sample_chars += len(text)
            if chars[part] >= SHARD_CHARS:
                flush(part)
        flush("train")
        flush("heldout")
        runner.finish()
    finally:
        runner.close()
    if not shards["train"]:
        raise DataError(f"{corpus.source}: no non-empty documents to train on.")
    with open(folder / HELDOUT_SAMPLE, "w", encoding="utf-8") as fh:
        for text in sample:
            fh.write(json.dumps(text) + "\n")
    parts = {}
    for name, recs in shards.items():
        recs.sort(key=lambda r: r["file"])
        parts[name] = {"shards": [{k: r[k] for k in ("file", "documents", "tokens", "crc32")} for r in recs],
                       "documents": sum(r["documents"] for r in recs), "tokens": sum(r["tokens"] for r in recs),
                       "words": sum(r["words"] for r in recs), "characters": sum(r["characters"] for r in recs),
                       "bytes": sum(r["bytes"] for r in recs)}
    return {"version": STORE_VERSION, "dtype": dtype, "vocab_size": vocab, "sep": sep,
            "layout": "each document's tokens followed by [SEP]", "parts": parts,
            "corpus": {"source": corpus.source, "kind": corpus.kind, "heldout_from": corpus.heldout_from,
                       "input_bytes": corpus.input_bytes()},
            "tokenizer_sha256": tokenizer_fingerprint(tokenizer),
            "build": {"num_proc": num_proc, "seconds": round(time.perf_counter() - started, 3)}}


def prepare_store(root: Path, corpus: CorpusStream, tokenizer, *, num_proc: int | None = None, build: bool = True,
                  on_progress: Callable[[int, int], None] | None = None,
                  corpus_fingerprint: str | None = None) -> TokenStore:
    """The store of ``corpus`` tokenised by ``tokenizer`` under ``root``: opened when one with the
    same fingerprint exists (``reused``), else built (``build=False``: an NlpkitError instead, for
    the ranks that wait on rank 0's build)."""
    from nlpkit._io import temp_dir_beside

    root = Path(root)
    corpus_fp = corpus_fingerprint or corpus.fingerprint()
    fingerprint = store_fingerprint(corpus_fp, tokenizer)
    path = root / fingerprint[:24]
    if path.exists():
        return open_store(path, reused=True)
    if not build:
        raise NlpkitError(f"token store {path} was not built; rank 0 builds it before the other ranks open it.")
    from nlpkit._io import is_full_disk

    tmp = temp_dir_beside(path, "building")
    try:
        meta = _build(tmp, corpus, tokenizer, num_proc=num_proc or default_num_proc(), on_progress=on_progress)
        meta["fingerprint"], meta["corpus_fingerprint"] = fingerprint, corpus_fp
        (tmp / META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        try:
            os.replace(tmp, path)
        except OSError:
            if not (path / META).is_file():  # not another run's complete store of the same corpus
                raise
    except OSError as exc:
        if not is_full_disk(exc):
            raise
        # the store is most of what a run writes, and --store can put it elsewhere: say so
        raise NlpkitError(f"no space left on the device while writing the token store in {root}; free some "
                          f"space, or put the store on a disk with room (--store DIR).") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return open_store(path, reused=False)


def remove_other_stores(root: Path, keep: Path) -> None:
    """Remove the stores under ``root`` other than ``keep`` (a run's own --out/token_store only:
    a shared --store keeps every corpus's store)."""
    for child in Path(root).iterdir():
        if child.is_dir() and child != keep and not child.name.startswith(".") and (child / META).is_file():
            shutil.rmtree(child, ignore_errors=True)
