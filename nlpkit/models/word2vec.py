"""Averaged word vectors + logistic regression (the "word2vec" baseline).

Word vectors are trained on the training texts with gensim's word2vec (Mikolov et al. 2013), or
factorised from their PPMI matrix (``trainer="ppmi-svd"``, :func:`ppmi_svd_vectors`), or read from a
file (``vectors=``: word2vec text or binary format, or GloVe-style text without a header). A
document is the mean of its word vectors, by default weighted by TF-IDF (each occurrence weighs the
word's idf), so that frequent function words do not dominate the average. Features are standardised,
then one logistic regression per label (multi-label) or a multinomial one (single-label) is fitted.
A document without any known word gets the zero vector, i.e. the scores of the intercepts.

Determinism: gensim is reproducible only with one worker thread (``workers=1``, the default);
its per-word initial vectors are seeded through a hash function, which is Python's salted
``hash`` by default — we pass a stable one, so PYTHONHASHSEED does not matter.

Saved without pickle: vectors in word2vec binary format (gensim's ``.kv``/``save`` would pickle),
everything else in ``.npz`` and JSON.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from nlpkit.errors import ConfigError, DataError, NlpkitError
from nlpkit.models.base import Classifier, Param, integer, n_jobs, number, one_of
from nlpkit.models.liblinear import fit_linear, linear_scores
from nlpkit.text import TEXT_RULE, saved_text_rule, tokenize, tokenize_all

VECTORS_BIN = "word2vec_vectors.bin"
ARRAYS_NPZ = "word2vec_lr.npz"
POOLINGS = ("tfidf", "mean")


def stable_hash(text: str) -> int:
    """A process-independent 32-bit hash (gensim's default, ``hash``, is salted per process)."""
    return int.from_bytes(hashlib.md5(text.encode("utf-8")).digest()[:4], "little")


def sniff_vectors_format(path: Path) -> dict[str, Any]:
    """How to read a word-vector file: ``{"binary": bool, "no_header": bool}``.

    Raises
    ------
    NlpkitError
        Not a file, a pickle (gensim ``.kv``/``.model``), or not a word-vector format.
    """
    path = Path(path)
    if not path.is_file():
        raise NlpkitError(f"vectors file not found: {path}. Check the --vectors path.")
    with open(path, "rb") as fh:
        head = fh.read(4096)
    fix = ("save it as word2vec format first: KeyedVectors.load(...).save_word2vec_format('vectors.bin', "
           "binary=True), then pass --vectors vectors.bin")
    if head[:1] == b"\x80" or path.suffix in (".kv", ".model", ".pkl", ".pickle"):
        raise NlpkitError(f"{path} is a pickled gensim file, which nlpkit does not load (unsafe); {fix}.")
    first, _, rest = head.partition(b"\n")
    try:
        fields = first.decode("utf-8").split()
    except UnicodeDecodeError:
        fields = []
    if len(fields) == 2 and all(f.isdigit() for f in fields):
        # word2vec header "<count> <dim>": binary if the rows are not text
        binary = b"\0" in rest or _not_utf8(rest)
        return {"binary": binary, "no_header": False, "dim": int(fields[1])}
    if len(fields) >= 2 and all(_is_float(f) for f in fields[1:]):
        return {"binary": False, "no_header": True, "dim": len(fields) - 1}  # GloVe text
    raise NlpkitError(
        f"{path} is not a word-vector file nlpkit can read (line 1 is neither a '<count> <dim>' header nor "
        f"'<word> <numbers>'); use word2vec text/binary format or GloVe text, or {fix}."
    )


def _not_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(data) - 4  # a multi-byte character cut at the end of the peek is fine
    return False


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load_vectors(path: Path, expected_dim: int | None = None):
    """gensim KeyedVectors from a word2vec (text/binary) or GloVe text file, checked."""
    from gensim.models import KeyedVectors

    fmt = sniff_vectors_format(path)
    if expected_dim is not None and fmt["dim"] != int(expected_dim):
        raise ConfigError(f"{path} has {fmt['dim']}-dimensional vectors but vector_size={expected_dim} was asked; "
                          f"drop the vector size option or pass a file with {expected_dim} dimensions.")
    try:
        kv = KeyedVectors.load_word2vec_format(str(path), binary=fmt["binary"], no_header=fmt["no_header"],
                                               unicode_errors="replace")
    except (ValueError, EOFError, UnicodeDecodeError, OSError) as exc:
        raise DataError(f"cannot read word vectors from {path}: {exc}. Check that every row has "
                        f"{fmt['dim']} numbers after the word.") from None
    if len(kv) == 0:
        raise DataError(f"{path} holds no word vectors.")
    return kv


def word_counts(tokens: list[list[str]]) -> dict[str, int]:
    """How often each word occurs in the tokenised texts."""
    counts: dict[str, int] = {}
    for doc in tokens:
        for w in doc:
            counts[w] = counts.get(w, 0) + 1
    return counts


def ppmi_svd_vectors(tokens: list[list[str]], *, min_count: int, window: int, dim: int, seed: int,
                     counts: dict[str, int] | None = None):
    """Word vectors from a truncated SVD of the positive PMI matrix of the training texts.

    Skip-gram with negative sampling implicitly factorises a shifted PMI matrix (Levy & Goldberg
    2014); factorising it explicitly, with word2vec's own tricks carried over — a context weighted
    by (window - distance + 1) / window as word2vec's shrinking window does in expectation, context
    counts smoothed to the power 0.75, W = U·sqrt(S) — comes close to it (Levy, Goldberg & Dagan
    2015). One pass over the corpus and one randomized SVD (Halko et al. 2011): no epochs, no
    threads to race, the same vectors for a seed. Returns gensim ``KeyedVectors``. ``counts``: the
    texts' :func:`word_counts`, when the caller has them.
    """
    import scipy.sparse as sp
    from gensim.models import KeyedVectors
    from sklearn.utils.extmath import randomized_svd

    counts = word_counts(tokens) if counts is None else counts
    vocab = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    index = {w: i for i, w in enumerate(vocab)}
    n = len(vocab)
    # the corpus as one id array, rare words dropped (as word2vec drops them before windowing); a
    # document's id separates documents so that no window crosses a boundary
    ids = [np.fromiter((index[w] for w in doc if w in index), dtype=np.int64) for doc in tokens]
    seq = np.concatenate(ids) if ids else np.zeros(0, dtype=np.int64)
    doc = np.repeat(np.arange(len(ids)), [len(a) for a in ids])
    cooc = sp.csr_matrix((n, n), dtype=np.float64)
    for d in range(1, window + 1):
        same = doc[:-d] == doc[d:]
        a, b = seq[:-d][same], seq[d:][same]
        weight = np.full(len(a), (window - d + 1) / window)
        part = sp.csr_matrix((weight, (a, b)), shape=(n, n))
        cooc = cooc + part + part.T
    cooc = cooc.tocoo()
    if cooc.nnz == 0:
        raise DataError("word2vec: no two known words share a window in the training texts; "
                        "use --set word2vec.trainer=word2vec or more text.")
    word_total = np.asarray(cooc.sum(axis=1)).ravel()
    context = np.asarray(cooc.sum(axis=0)).ravel() ** 0.75
    pmi = np.log(cooc.data * context.sum() / (word_total[cooc.row] * context[cooc.col]))
    keep = pmi > 0
    ppmi = sp.csr_matrix((pmi[keep], (cooc.row[keep], cooc.col[keep])), shape=(n, n))
    k = min(dim, n)
    u, s, _ = randomized_svd(ppmi, k, n_iter=5, random_state=seed)
    vectors = np.zeros((n, dim), dtype=np.float32)
    vectors[:, :k] = u * np.sqrt(s)
    kv = KeyedVectors(dim)
    kv.add_vectors(vocab, vectors)
    return kv


class Word2VecClassifier(Classifier):
    """Mean (or TF-IDF-weighted mean) word vectors, standardised, + logistic regression.

    Parameters (keyword only)
    -------------------------
    vectors : str or None
        Pre-trained vectors file; None = train word2vec on the training texts.
    trainer : "word2vec" or "ppmi-svd"
        gensim's word2vec, or :func:`ppmi_svd_vectors` (faster; window, min_count and vector_size
        apply, the other word2vec options do not).
    vector_size, window, min_count, sg, epochs
        word2vec training options (``epochs=None``: scaled so that about ``target_tokens`` tokens
        are seen, between ``min_epochs`` and ``max_epochs``).
    pooling : "tfidf" or "mean"
        How word vectors become a document vector.
    C, class_weight
        Logistic regression options.
    workers : int
        gensim threads; 1 = reproducible.
    n_jobs : int
        Worker processes for the multi-label logistic regressions (-1 = every CPU); the same weights.
    seed : int
        word2vec and solver seed.
    """

    family = "word2vec"
    param_defaults = {
        "vectors": None,
        "vector_size": 100,
        "window": 5,
        "min_count": 2,
        # Skip-gram learns rare words better than CBOW (Mikolov et al. 2013), which matters on the
        # small corpora baselines train on (docs/benchmarks.md, "Evidence behind the defaults")
        "sg": 1,
        "epochs": None,
        # "ppmi-svd": vectors from an SVD of the PPMI matrix (ppmi_svd_vectors), deterministic and fast
        "trainer": "word2vec",
        "target_tokens": 5_000_000,
        "min_epochs": 5,
        "max_epochs": 30,
        "pooling": "tfidf",
        "C": 1.0,
        "class_weight": None,
        "max_iter": 1000,
        "workers": 1,
        # worker processes for the per-label models of multi-label data; the weights do not depend on it
        "n_jobs": -1,
        "seed": 0,
    }

    param_checks = {
        "vectors": Param(lambda v: v is None or isinstance(v, str), "none or the path of a word-vector file"),
        "vector_size": integer(1),
        "window": integer(1),
        "min_count": integer(1),
        "sg": one_of(0, 1),  # CBOW or skip-gram
        "epochs": integer(1, also=(None,)),
        "trainer": one_of("word2vec", "ppmi-svd"),
        "target_tokens": integer(1),
        "min_epochs": integer(1),
        "max_epochs": integer(1),
        "pooling": one_of(*POOLINGS),
        "C": number(above=0),
        "class_weight": one_of(None, "balanced"),
        "max_iter": integer(1),
        "workers": integer(1),
        "n_jobs": n_jobs(),
        "seed": integer(0, 2**32 - 1),
    }

    @classmethod
    def baseline_params(cls, options) -> dict[str, Any]:
        """As every family, plus ``--vectors`` read up front: an unreadable, pickled or unknown
        file fails before any model trains."""
        if options.vectors is not None:
            sniff_vectors_format(Path(options.vectors))
        return super().baseline_params(options)

    def _check_params(self) -> None:
        super()._check_params()
        p = self.params
        if p["min_epochs"] > p["max_epochs"]:
            raise ConfigError(f"word2vec: min_epochs={p['min_epochs']} is above max_epochs={p['max_epochs']}; "
                              "set min_epochs <= max_epochs.")

    # -- word vectors ----------------------------------------------------------------------------
    def _train_vectors(self, tokens: list[list[str]]):
        from gensim.models import Word2Vec

        p = self.params
        n_tokens = sum(len(t) for t in tokens)
        if n_tokens == 0:
            raise DataError("word2vec: every training text is empty after tokenisation; check the text column.")
        epochs = int(p["epochs"]) if p["epochs"] is not None else int(
            min(int(p["max_epochs"]), max(int(p["min_epochs"]), round(int(p["target_tokens"]) / n_tokens))))
        # a word must occur min_count times, unless the corpus is so small that nothing would remain
        counts = word_counts(tokens)
        min_count = int(p["min_count"]) if max(counts.values()) >= int(p["min_count"]) else 1
        if p["trainer"] == "ppmi-svd":
            kv = ppmi_svd_vectors(tokens, min_count=min_count, window=int(p["window"]), dim=int(p["vector_size"]),
                                  seed=int(p["seed"]), counts=counts)
            return kv, {"trainer": "ppmi-svd", "min_count": min_count, "corpus_tokens": n_tokens}
        # gensim reads the corpus in order, with a learning rate that falls to 0 over the run: on data
        # stored class after class the last class's words would be learnt at the lowest rates
        # (docs/benchmarks.md, "Evidence behind the defaults")
        order = np.random.default_rng(int(p["seed"])).permutation(len(tokens))
        w2v = Word2Vec(sentences=[tokens[i] for i in order], vector_size=int(p["vector_size"]), window=int(p["window"]),
                       min_count=min_count, sg=int(p["sg"]), epochs=epochs, workers=int(p["workers"]),
                       seed=int(p["seed"]), hashfxn=stable_hash)
        return w2v.wv, {"trainer": "word2vec", "epochs": epochs, "min_count": min_count, "corpus_tokens": n_tokens}

    def _doc_vectors(self, tokens: list[list[str]]) -> np.ndarray:
        kv = self.vectors_
        out = np.zeros((len(tokens), kv.vector_size), dtype=np.float64)
        index = kv.key_to_index
        vecs = kv.vectors
        for i, doc in enumerate(tokens):
            ids = [index[w] for w in doc if w in index]
            if not ids:
                continue  # no known word: the zero vector
            ids_arr = np.asarray(ids)
            weights = self.word_weights_[ids_arr]
            total = weights.sum()
            if total > 0:
                out[i] = weights @ vecs[ids_arr] / total
        return out

    def _fit_weights(self, tokens: list[list[str]]) -> np.ndarray:
        """Per-vector-row weights: idf from the training documents (smoothed), or 1 for plain means."""
        n_words = len(self.vectors_)
        if self.params["pooling"] == "mean":
            return np.ones(n_words, dtype=np.float64)
        index = self.vectors_.key_to_index
        df = np.zeros(n_words, dtype=np.float64)
        for doc in tokens:
            ids = {index[w] for w in doc if w in index}
            if ids:
                df[list(ids)] += 1
        n = len(tokens)
        # scikit-learn's smooth idf; words of the vector file unseen in train get the largest weight
        return np.log((1 + n) / (1 + df)) + 1

    # -- the contract ----------------------------------------------------------------------------
    def fit(self, train, valid=None, progress=None):
        from sklearn.preprocessing import StandardScaler


        self._set_label_space(train)
        self.text_rule_ = TEXT_RULE
        p = self.params
        task_id = None
        if progress is not None and hasattr(progress, "add_task"):
            task_id = progress.add_task("word2vec: vectors", total=None)
        tokens = tokenize_all(train.texts)
        info: dict[str, Any] = {}
        if p["vectors"]:
            self.vectors_ = load_vectors(Path(p["vectors"]), expected_dim=None)
            info.update(vectors_file=str(p["vectors"]), vocabulary_size=len(self.vectors_))
        else:
            self.vectors_, train_info = self._train_vectors(tokens)
            info.update(train_info, vocabulary_size=len(self.vectors_))
        known = sum(1 for doc in tokens for w in doc if w in self.vectors_.key_to_index)
        info["train_token_coverage"] = round(known / max(sum(len(t) for t in tokens), 1), 4)
        self.word_weights_ = self._fit_weights(tokens)
        X = self._doc_vectors(tokens)
        scaler = StandardScaler().fit(X)
        self.mean_ = scaler.mean_.astype(np.float64)
        self.scale_ = scaler.scale_.astype(np.float64)
        if progress is not None and task_id is not None:
            progress.update(task_id, description="word2vec: logistic regression", total=len(self.label_names_),
                            completed=0)
        W, b, warnings = fit_linear((X - self.mean_) / self.scale_, train.y, self.task_, self.label_names_,
                                    C=float(p["C"]), class_weight=p["class_weight"], max_iter=int(p["max_iter"]),
                                    seed=int(p["seed"]), multi_solver="lbfgs", progress=progress, task_id=task_id,
                                    n_jobs=p["n_jobs"])
        self.coef_, self.intercept_ = W, b
        info["dim"] = int(self.vectors_.vector_size)
        info["warnings"] = warnings
        self.fit_info_ = info
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        self._check_fitted()
        if len(texts) == 0:
            return np.zeros((0, len(self.label_names_)))
        X = self._doc_vectors([tokenize(t, self.text_rule_) for t in texts])
        return linear_scores((X - self.mean_) / self.scale_, self.coef_, self.intercept_, self.task_)

    def save(self, path: Path) -> None:
        path = self._prepare_dir(path)
        self.vectors_.save_word2vec_format(str(path / VECTORS_BIN), binary=True)
        np.savez_compressed(path / ARRAYS_NPZ, coef=self.coef_, intercept=self.intercept_, mean=self.mean_,
                            scale=self.scale_, word_weights=self.word_weights_)
        self._write_model_json(path, fit_info=self.fit_info(), text_rule=self.text_rule_)

    @classmethod
    def load(cls, path: Path):
        from gensim.models import KeyedVectors

        model, meta = cls._from_model_json(path)
        path = Path(path)
        # models saved before the text rule was recorded tokenised with re
        model.text_rule_ = saved_text_rule(meta.get("text_rule"), path / "nlpkit_model.json")
        with cls._reading_state(path / VECTORS_BIN):
            model.vectors_ = KeyedVectors.load_word2vec_format(str(path / VECTORS_BIN), binary=True)
        with cls._reading_state(path / ARRAYS_NPZ):
            with np.load(path / ARRAYS_NPZ, allow_pickle=False) as npz:
                for key in ("coef", "intercept", "mean", "scale"):
                    setattr(model, f"{key}_", npz[key])
                model.word_weights_ = npz["word_weights"]
        if model.coef_.shape != (model.vectors_.vector_size, len(model.label_names_)) or \
                len(model.word_weights_) != len(model.vectors_):
            raise NlpkitError(f"the arrays in {path / ARRAYS_NPZ} do not match the vectors or labels; re-run the experiment.")
        return model
