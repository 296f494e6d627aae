"""fastText trainings, each in a fresh Python process: the isolation that makes them reproducible.

fastText's Hogwild SGD is reproducible only with one thread, and even then the build nlpkit uses
(fasttext-numpy2) starts from memory it never clears (see ``_ZEROED_MALLOC``; facebookresearch/fastText
issue #1061), so a training in a process that did earlier work can differ or diverge.
:func:`train_in_fresh_processes` runs every training in a new process with zero-filled allocations,
side by side, and loads each saved ``.bin`` after checking its structure
(:mod:`nlpkit.models.fasttext_format`); a training may first write the random vectors its words
start from (:func:`write_start_vectors`).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from nlpkit.models.fasttext_format import LABEL_PREFIX, check_model_file

# a training's arguments under this key are those of write_start_vectors, run before fastText trains
START_KEY = "nlpkit_start_vectors"
# what fastText takes for the space between words (dictionary.cc, readWord)
_FASTTEXT_SPACE = re.compile(r"[ \n\r\t\v\f\0]+")


def write_start_vectors(train_file, out, *, dim: int, norm: float, min_count: int, seed: int) -> int:
    """Write the vectors fastText's words start from, as its pretrained vectors (``.vec`` text): for
    each word of ``train_file`` (a fastText training file) seen at least ``min_count`` times, a
    random direction drawn from ``seed``, ``norm`` long. Returns the number of words.

    Words are read as fastText reads them, between its space characters, labels left out; a word
    below ``min_count`` is left out too, since fastText adds every word of this file to its
    vocabulary.
    """
    import io

    counts: Counter[str] = Counter()
    with open(train_file, encoding="utf-8") as fh:
        for line in fh:
            counts.update(w for w in _FASTTEXT_SPACE.split(line) if w and not w.startswith(LABEL_PREFIX))
    words = [w for w, n in counts.items() if n >= min_count]
    rng = np.random.default_rng(seed)
    with open(out, "w", encoding="utf-8", newline="\n") as fh:
        fh.write(f"{len(words)} {dim}\n")
        for start in range(0, len(words), 10_000):  # in blocks: a large vocabulary's text is large
            block = words[start:start + 10_000]
            vectors = rng.standard_normal((len(block), dim))
            vectors *= norm / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), np.finfo(float).tiny)
            rows = io.StringIO()
            np.savetxt(rows, vectors, fmt="%.6f")
            fh.writelines(f"{word} {row}\n" for word, row in zip(block, rows.getvalue().splitlines()))
    return len(words)


_TRAIN_SCRIPT = f"""
import json, sys
spec = json.loads(sys.argv[1])
start = spec["args"].pop({START_KEY!r}, None)
if start is not None:
    from nlpkit.models.fasttext_process import write_start_vectors
    write_start_vectors(spec["args"]["input"], spec["args"]["pretrainedVectors"], **start)
import fasttext
try:
    model = fasttext.train_supervised(**spec["args"])
except (RuntimeError, ValueError) as exc:
    sys.stderr.write("NLPKIT-ERROR: " + " ".join(str(exc).split()) + "\\n")
    sys.exit(3)
model.save_model(spec["out"])
"""


# fasttext-numpy2 allocates its input matrix (one row of vectors per word and n-gram bucket) without
# clearing it and, with one thread, draws random values for its first tenth only: the loop that
# fills it gives each of up to ten threads a tenth (upstream fastText has the same loop but a
# zero-filled std::vector, so the rest starts at 0). The other nine tenths held whatever the
# allocator handed out: zeros from fresh pages, or bytes left by earlier allocations, on which
# training diverged ("Encountered NaN") or gave other weights. glibc's MALLOC_PERTURB_ fills each
# allocation with its value xor 0xff: 255 gives zeros, so every training starts as upstream's does,
# whatever ran before. Other C libraries ignore the variable.
_ZEROED_MALLOC = {"MALLOC_PERTURB_": "255"}


def train_in_fresh_processes(jobs: list[tuple[dict[str, Any], Path, float | None]]) -> list:
    """Run every ``(args, out, timeout)`` training at once, one new Python process each.

    Returns, in order, the loaded model or the exception for each: RuntimeError with fastText's
    message when training fails (e.g. "Encountered NaN"), TimeoutError when its ``timeout`` seconds
    pass first (the process is killed).
    """
    import os
    import subprocess
    import sys
    import time

    import fasttext

    # stderr goes to a file beside each model: a pipe could fill up while another process is waited for
    logs = [Path(f"{out}.stderr") for _args, out, _timeout in jobs]
    env = {**os.environ, **_ZEROED_MALLOC}
    if any(START_KEY in args for args, _out, _timeout in jobs):
        # that process imports nlpkit to write its start vectors: from where this one did
        import nlpkit

        root = str(Path(nlpkit.__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.environ.get("PYTHONPATH"), root]))
    procs = []
    for (args, out, _timeout), log in zip(jobs, logs):
        with open(log, "wb") as err:
            procs.append(subprocess.Popen([sys.executable, "-c", _TRAIN_SCRIPT, json.dumps({"args": args, "out": str(out)})],
                                          stdout=subprocess.DEVNULL, stderr=err, env=env))
    start = time.monotonic()
    results: list = []
    try:
        for proc, (_args, out, timeout), log in zip(procs, jobs, logs):
            try:
                proc.wait(timeout=None if timeout is None else max(0.0, timeout - (time.monotonic() - start)))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                results.append(TimeoutError(f"fastText training did not finish within {timeout:g} s"))
                continue
            stderr = log.read_text(encoding="utf-8", errors="replace")
            if proc.returncode != 0 or not out.is_file():
                lines = [ln for ln in stderr.splitlines() if ln.startswith("NLPKIT-ERROR: ")]
                detail = lines[-1][len("NLPKIT-ERROR: "):] if lines else (stderr.strip().splitlines() or ["no output"])[-1]
                results.append(RuntimeError(detail))
                continue
            check_model_file(out)
            results.append(fasttext.load_model(str(out)))
    finally:
        for proc in procs:  # an interrupt (Ctrl-C) or an error must not leave trainings running
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results
