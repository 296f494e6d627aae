"""``finetune()``: the Python API behind ``nlpkit finetune``.

Checks the checkpoint folder and options, loads the split, fine-tunes a
:class:`~nlpkit.models.transformer.TransformerClassifier` on it and records a scored run like every
baseline (:func:`nlpkit.experiment.run_experiment`), with what the model started from
(:func:`base_model_info`). Under a distributed launch only rank 0 records the run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlpkit.hf.checkpoint import check_checkpoint_dir, check_max_length
from nlpkit.seeds import check_seed
from nlpkit.training.distributed import dist_context

if TYPE_CHECKING:
    from nlpkit.runs import Run


def finetune(split_dir: str | os.PathLike, model_dir: str | os.PathLike, *, seed: int = 0,
             runs_dir: str | os.PathLike | None = None, name: str | None = None,
             rule_strategy: str = "auto", progress=None, stage=None, fold: int | None = None,
             **options: Any) -> "Run | None":
    """Fine-tune a local checkpoint on a split and record a scored run (like every baseline).

    Parameters
    ----------
    split_dir : a split folder written by ``nlpkit split`` (train, optional valid, test).
    model_dir : a local Hugging Face checkpoint folder (``nlpkit pretrain`` output, BERT, ...).
    seed : seeds weight initialisation of the head, dropout and batch order.
    runs_dir : the runs registry (default ``$NLPKIT_RUNS_DIR`` or ``./runs``).
    name : optional label stored in ``run.json`` as ``config.name``.
    fold : for a k-fold split, the fold to run on (see :func:`nlpkit.data.fold_split`).
    progress : optional ``rich.progress.Progress``; fine-tuning adds a task to it and advances it.
    stage : optional ``callable(stage_name)`` told when each experiment stage starts.
    options : :class:`~nlpkit.models.transformer.TransformerClassifier` parameters
        (``epochs``, ``lr``, ``batch_size``, ``max_length``, ``long_text``, ...).

    Returns
    -------
    The recorded :class:`~nlpkit.runs.Run` (``None`` on non-zero ranks of a distributed launch,
    which train but do not record).
    """
    import shutil
    import tempfile

    from nlpkit.data import load_experiment_split
    from nlpkit.experiment import run_experiment
    from nlpkit.models.transformer import TransformerClassifier

    check_seed(seed)
    check_checkpoint_dir(model_dir)
    if "max_length" in options:
        check_max_length(model_dir, int(options["max_length"]))
    split = load_experiment_split(split_dir, fold)
    model = TransformerClassifier(model=str(model_dir), seed=seed, **options)
    config = {"split_dir": str(split_dir), **model.get_params()}
    if name:
        config["name"] = name
    extra = {"base_model": base_model_info(model_dir)}
    if dist_context().is_main:
        return run_experiment(model, split, kind="finetune", config=config, seed=seed, runs_root=runs_dir,
                              rule_strategy=rule_strategy, progress=stage, fit_progress=progress, extra_info=extra)
    # Other ranks take part in training (DDP) and record into a scratch registry, thrown away.
    scratch = tempfile.mkdtemp(prefix="nlpkit-rank")
    try:
        run_experiment(model, split, kind="finetune", config=config, seed=seed, runs_root=scratch,
                       rule_strategy=rule_strategy, extra_info=extra)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return None


def base_model_info(model_dir: str | os.PathLike) -> dict:
    """What the fine-tune started from: folder, architecture, size, and the pretraining run if any."""
    import json

    path = Path(model_dir)
    info: dict[str, Any] = {"path": str(path.resolve())}
    try:
        with open(path / "config.json", encoding="utf-8") as fh:
            cfg = json.load(fh)
        info.update({k: cfg.get(k) for k in ("model_type", "num_hidden_layers", "hidden_size", "vocab_size")})
    except (OSError, ValueError):
        pass
    run_json = path.parent / "run.json"  # a model/ folder inside an `nlpkit pretrain` run
    if run_json.is_file():
        try:
            with open(run_json, encoding="utf-8") as fh:
                run = json.load(fh)
            if isinstance(run, dict) and run.get("kind") == "pretrain":
                info["pretrain_run"] = run.get("name")
        except (OSError, ValueError):
            pass
    return info
