"""Linear models for every label, the engine under the tfidf-lr and word2vec families.

Multi-label: one binary logistic regression per label (one-vs-rest), solved in the dual by
liblinear (Yu, Huang & Lin 2011, "Dual coordinate descent methods for logistic regression"), which
suits text, where features outnumber documents. Single-label: one multinomial logistic regression
(lbfgs). Large work is spread over loky worker processes (joblib), each of which ends when its
parent dies (:func:`_exit_with_parent`); the weights never depend on the number of workers.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Sequence

import numpy as np

from nlpkit.errors import DataError


@contextmanager
def _quiet_one_thread():
    """Silence scikit-learn's convergence warnings (max_iter is generous) and limit BLAS to one thread.

    The products here are small (documents x 100 dense features, or sparse), where multi-threaded
    BLAS on a busy machine slows lbfgs down. Enter it once around many fits: setting the limit reads
    the process's loaded libraries each time (docs/benchmarks.md, "Evidence behind the defaults").
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    with warnings.catch_warnings(), threadpool_limits(limits=1, user_api="blas"):
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield




def fit_linear(X, Y, task: str, label_names: Sequence[str], *, C: float, class_weight=None, tol: float = 1e-4,
               max_iter: int = 1000, seed: int = 0, multi_solver: str = "liblinear-dual",
               progress=None, task_id=None, n_jobs: int = 1) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Logistic-regression weights for every label: ``(W (n_features, n_labels), b (n_labels,), warnings)``.

    Multi-label: one binary model per label (``multi_solver`` "liblinear-dual" for sparse text with
    more features than documents, "lbfgs" for a few dense features); a label never positive in
    train gets ``b = -inf`` (score 0), one always positive ``b = +inf`` (score 1).
    Single-label: one multinomial model over the classes seen in train; unseen classes get
    ``b = -inf``; with a single class seen, it gets every document (and a warning).
    ``n_jobs`` > 1 spreads the multi-label models over worker processes (see
    :func:`fit_binary_columns`); the weights do not depend on it.
    """
    from sklearn.linear_model import LogisticRegression

    def advance(n: int) -> None:
        if progress is not None and task_id is not None:
            progress.update(task_id, advance=n)

    warnings: list[str] = []
    if task == "multi":
        W, b = fit_binary_columns(X, Y, C=C, class_weight=class_weight, tol=tol, max_iter=max_iter, seed=seed,
                                  solver=multi_solver, n_jobs=n_jobs, progress=advance)
        return W, b, warnings

    n_labels = Y.shape[1]
    W = np.zeros((X.shape[1], n_labels), dtype=np.float64)
    b = np.zeros(n_labels, dtype=np.float64)
    counts = np.asarray(Y.sum(axis=0)).ravel()
    # single-label: multinomial over the classes seen in train; unseen classes score 0
    y = np.asarray(Y.argmax(axis=1)).ravel()
    present = np.flatnonzero(counts > 0)
    if len(present) == 0:
        raise DataError("no training document has a label; check the label column (--label-col).")
    b[:] = -np.inf
    if len(present) == 1:
        b[present[0]] = 0.0
        warnings.append(
            f"every training document has the label {label_names[present[0]]!r}: "
            f"no classifier can be fitted, so it always predicts that label."
        )
    else:
        clf = LogisticRegression(C=C, solver="lbfgs", tol=tol, max_iter=max_iter, class_weight=class_weight,
                                 random_state=seed)
        with _quiet_one_thread():
            clf.fit(X, y)
        classes = clf.classes_
        if len(classes) == 2:  # sklearn keeps one weight vector: softmax(-z/2, z/2) = sigmoid(z)
            coef = np.vstack([-clf.coef_[0] / 2, clf.coef_[0] / 2])
            intercept = np.array([-clf.intercept_[0] / 2, clf.intercept_[0] / 2])
        else:
            coef, intercept = clf.coef_, clf.intercept_
        W[:, classes] = coef.T
        b[classes] = intercept
    advance(n_labels)
    return W, b, warnings


# Below this many stored values x labels, worker processes cost more than they save.
_PARALLEL_MIN_WORK = 20_000_000
# Arrays at least this large reach the workers memory-mapped (read-only) rather than copied.
_MEMMAP_MIN_BYTES = "1M"


def n_workers(n_jobs: int | None, work: int) -> int:
    """Worker processes for ``work`` (non-zeros x models): ``n_jobs`` (None or -1 = every CPU), or 1
    when the work is too small to pay for starting processes."""
    from joblib import cpu_count

    cpus = cpu_count()  # the usable CPUs: affinity, cgroup quota and LOKY_MAX_CPU_COUNT, unlike os.cpu_count
    jobs = cpus if n_jobs in (None, -1) else max(1, min(int(n_jobs), cpus))
    return 1 if work < _PARALLEL_MIN_WORK else jobs


def _worker_options() -> dict:
    """Extra ``Parallel`` arguments for loky workers: each ends when this process dies.

    Without it a parent killed with ``kill -9`` leaves its workers, with their copies of the data,
    running to the end of their task and then idle for loky's worker timeout (300 s).
    """
    import os

    return {"initializer": _exit_with_parent, "initargs": (os.getpid(),)}


def _exit_with_parent(parent: int) -> None:
    """Worker initializer (see :func:`_worker_options`): end this process when ``parent`` dies.

    On Linux the kernel sends SIGTERM on the parent's death (``PR_SET_PDEATHSIG``, which takes effect
    even inside a long liblinear call). It fires when the parent *thread* that started the worker
    exits; loky starts workers from the thread calling ``Parallel`` or from its own manager thread,
    which nlpkit only does from the main thread. Elsewhere -- and should the signal be missed -- a
    daemon thread notices the parent is gone within a second (a new parent id after re-parenting).
    """
    import os
    import signal
    import sys
    import threading
    import time

    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # it died before the signal was set up
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="nlpkit-exit-with-parent", daemon=True).start()


def fit_binary_columns(X, Y, *, fit_rows=None, score_rows=None, n_jobs: int | None = 1, progress=None, **fit_args):
    """One binary logistic regression per column of ``Y`` (one-vs-rest), fitted on rows ``fit_rows``
    of X (default: all).

    Returns ``(W (n_features, n_labels), b (n_labels,))``, or, when ``score_rows`` is given, the
    sigmoid scores ``(len(score_rows), n_labels)`` of those rows instead. ``fit_args``: ``C``,
    ``class_weight``, ``tol``, ``max_iter``, ``seed``, ``solver`` (see :func:`_binary_chunk`).
    """
    return binary_tasks(X, Y, [(fit_rows, score_rows)], n_jobs=n_jobs, progress=progress, **fit_args)[0]


def binary_tasks(X, Y, tasks, *, n_jobs: int | None = 1, progress=None, **fit_args) -> list:
    """:func:`fit_binary_columns` for several ``(fit_rows, score_rows)`` pairs at once (the folds of
    a cross-fit and the final fit), so that worker processes stay busy across all of them.

    With ``n_jobs`` > 1 each task's labels are dealt out to worker processes. liblinear draws from
    one process-wide random generator, so threads would make the weights depend on scheduling;
    separate processes (each model seeded the same way) give exactly the weights of a sequential
    run. ``progress(n)`` is called as models finish.
    """
    Y = Y.tocsc() if hasattr(Y, "tocsc") else np.asarray(Y)
    if hasattr(X, "sum_duplicates"):
        # Workers get X memory-mapped read-only; scikit-learn would otherwise try to sort its
        # indices in place there.
        X.sum_duplicates()
    n_labels = Y.shape[1]
    rows = sum(X.shape[0] if fit is None else len(fit) for fit, _ in tasks)
    jobs = n_workers(n_jobs, int(getattr(X, "nnz", X.size)) * n_labels * rows // max(X.shape[0], 1))
    if jobs == 1:
        return [_binary_chunk(X, Y, fit_rows=fit, score_rows=score, progress=progress, **fit_args)
                for fit, score in tasks]
    from joblib import Parallel, delayed

    # Round-robin over labels sorted by frequency, so every worker gets a share of the costly ones.
    counts = np.asarray((Y != 0).sum(axis=0)).ravel()
    order = np.argsort(-counts, kind="stable")
    chunks = [np.sort(order[i::jobs]) for i in range(jobs)]
    results = Parallel(n_jobs=jobs, backend="loky", max_nbytes=_MEMMAP_MIN_BYTES, **_worker_options())(
        delayed(_binary_chunk)(X, Y[:, cols], fit_rows=fit, score_rows=score, **fit_args)
        for fit, score in tasks for cols in chunks)
    if progress is not None:
        progress(n_labels * len(tasks))
    out = []
    for t, (_fit, score) in enumerate(tasks):
        parts = results[t * jobs:(t + 1) * jobs]
        if score is not None:
            scores = np.zeros((len(score), n_labels))
            for cols, part in zip(chunks, parts):
                scores[:, cols] = part
            out.append(scores)
        else:
            W, b = np.zeros((X.shape[1], n_labels)), np.zeros(n_labels)
            for cols, (Wc, bc) in zip(chunks, parts):
                W[:, cols], b[cols] = Wc, bc
            out.append((W, b))
    return out


def _binary_chunk(X, Y, *, C: float, class_weight=None, tol: float = 1e-4, max_iter: int = 1000, seed: int = 0,
                  solver: str = "liblinear-dual", fit_rows=None, score_rows=None, progress=None):
    """Every column of ``Y`` on rows ``fit_rows`` of X, in this process; see :func:`fit_binary_columns`.

    A column never positive in the fitted rows gets ``b = -inf`` (score 0), one always positive
    ``b = +inf`` (score 1). ``solver``: "liblinear-dual" for sparse text with more features than
    documents, or a scikit-learn solver name such as "lbfgs" for a few dense features.
    """
    from scipy.special import expit
    from sklearn.linear_model import LogisticRegression

    Xf = X if fit_rows is None else X[fit_rows]
    Yf = Y if fit_rows is None else Y[fit_rows]
    n_docs, n_cols = Yf.shape
    counts = np.asarray((Yf != 0).sum(axis=0)).ravel()
    W = np.zeros((X.shape[1], n_cols))
    b = np.zeros(n_cols)
    solver_args = dict(solver="liblinear", dual=True) if solver == "liblinear-dual" else dict(solver=solver)
    with _quiet_one_thread():
        for j in range(n_cols):
            if counts[j] == 0:
                b[j] = -np.inf  # never positive in train: score 0
            elif counts[j] == n_docs:
                b[j] = np.inf  # positive everywhere in train: score 1
            else:
                y = Yf[:, j].toarray().ravel() if hasattr(Yf, "toarray") else np.asarray(Yf[:, j])
                clf = LogisticRegression(C=C, tol=tol, max_iter=max_iter, class_weight=class_weight,
                                         random_state=seed, **solver_args)
                clf.fit(Xf, (y != 0).astype(np.int64))
                W[:, j] = clf.coef_[0]
                b[j] = clf.intercept_[0]
            if progress is not None:
                progress(1)
    if score_rows is None:
        return W, b
    z = X[score_rows] @ W
    return expit((z.toarray() if hasattr(z, "toarray") else np.asarray(z)) + b)


def multinomial_tasks(X, Y, tasks, label_names: Sequence[str], *, n_jobs: int | None = 1, **fit_args) -> list:
    """Single-label :func:`fit_linear` for several ``(fit_rows, score_rows)`` pairs (the folds of a
    cross-fit and the final fit): ``[(scores of score_rows, None, warnings) or (W, b, warnings), ...]``
    with ``(None, None)`` meaning every row and the weights.

    Unlike one-vs-rest, a multinomial model cannot be split by label, so with ``n_jobs`` > 1 the
    tasks themselves run in worker processes, largest first (scikit-learn's L-BFGS costs about
    n_features x n_classes per iteration, seconds per fit on many classes).
    """
    if hasattr(X, "sum_duplicates"):
        X.sum_duplicates()  # see binary_tasks: workers get X memory-mapped read-only

    rows = sum(X.shape[0] if fit is None else len(fit) for fit, _ in tasks)
    jobs = min(len(tasks), n_workers(n_jobs, int(getattr(X, "nnz", X.size)) * Y.shape[1] * rows // max(X.shape[0], 1)))
    if jobs == 1:
        return [_multinomial_task(X, Y, fit, score, label_names, **fit_args) for fit, score in tasks]
    from joblib import Parallel, delayed

    sizes = [X.shape[0] if fit is None else len(fit) for fit, _ in tasks]
    order = sorted(range(len(tasks)), key=lambda t: -sizes[t])
    results = Parallel(n_jobs=jobs, backend="loky", max_nbytes=_MEMMAP_MIN_BYTES, **_worker_options())(
        delayed(_multinomial_task)(X, Y, *tasks[t], label_names, **fit_args) for t in order)
    out: list = [None] * len(tasks)
    for t, result in zip(order, results):
        out[t] = result
    return out


def _multinomial_task(X, Y, fit_rows, score_rows, label_names, **fit_args):
    """One task of :func:`multinomial_tasks`, in this process."""
    Xf, Yf = (X, Y) if fit_rows is None else (X[fit_rows], Y[fit_rows])
    W, b, warnings = fit_linear(Xf, Yf, "single", label_names, **fit_args)
    if score_rows is None:
        return W, b, warnings
    return linear_scores(X[score_rows], W, b, "single"), None, warnings


def linear_scores(X, W, b, task: str) -> np.ndarray:
    """Sigmoid (multi-label) or softmax (single-label) of ``X @ W + b``."""
    from scipy.special import expit, softmax

    if hasattr(W, "toarray") and 2 * W.nnz >= W.shape[0] * W.shape[1]:
        # Coefficients saved sparse by an older nlpkit although nearly all non-zero (L2 keeps every
        # weight): sparse x dense gives the same sums in the same order (identical scores, tested),
        # faster than sparse x sparse (bench/scale_bench.py, docs/benchmarks.md "Larger data").
        W = W.toarray()
    z = X @ W
    z = (z.toarray() if hasattr(z, "toarray") else np.asarray(z)) + b
    if task == "multi":
        return expit(z)
    return softmax(z, axis=1)
