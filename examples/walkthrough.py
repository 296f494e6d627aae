"""nlpkit end to end from Python, on the bundled Reuters sample.

inspect -> split -> baseline -> pretrain (tiny) -> finetune -> report, with the same functions the
commands call. Usage: python examples/walkthrough.py [WORKDIR]   (default ./nlpkit-demo-py)
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from nlpkit.baseline import baseline_config, run_baselines
from nlpkit.data import describe, read_dataset
from nlpkit.finetune import finetune
from nlpkit.pretrain import PretrainConfig, pretrain
from nlpkit.report import build_report, render_markdown, write_report
from nlpkit.split import split_files

DATA = Path(__file__).resolve().parent.parent / "data" / "reuters_sample.jsonl"
SEED = 13


def main(work: Path, pretrain_seconds: float = 90, finetune_seconds: float = 120) -> None:
    """The walkthrough in ``work``; pretraining and fine-tuning stop at their time budgets."""
    shutil.rmtree(work, ignore_errors=True)
    runs = work / "runs"

    # 1. A first look at the data.
    stats = describe(read_dataset(DATA))
    print(f"{stats['n_docs']} documents, {stats['n_labels']} labels, task {stats['task']}")

    # 2. One stratified split that every model is trained and scored on.
    split, _, manifest = split_files(work / "split", input=DATA, test_size=0.2, valid_size=0.1, seed=SEED)
    print("split sizes:", manifest["sizes"]["obtained"])

    # 3. Baselines: each is fitted, its decision rule tuned on valid, scored on test, recorded.
    config = baseline_config(["majority", "tfidf-lr", "fasttext", "word2vec"], seed=SEED)
    for run in run_baselines(split, config, runs_root=runs):
        print(f"{run.model}: micro-F1 {run.metrics()['test']['metrics']['micro_f1']:.3f}  ({run.path.name})")

    # 4. A tiny encoder pretrained on the training texts (never the test part). ModernBERT (pre-norm)
    #    leaves the unigram plateau within this budget; post-norm BERT tiny does not.
    config = PretrainConfig(corpus=str(work / "split"), out=str(work / "pretrained"), arch="modernbert",
                            size="tiny", vocab_size=4000, max_length=128, time_budget=pretrain_seconds, seed=SEED)
    pretrain(config, runs_root=runs)

    # 5. Fine-tuned as a classifier, scored and recorded like the baselines.
    run = finetune(work / "split", work / "pretrained", seed=SEED, runs_dir=runs, epochs=8, max_length=128,
                   lr=3e-4, time_budget=finetune_seconds)
    print(f"finetune: micro-F1 {run.metrics()['test']['metrics']['micro_f1']:.3f}")

    # 6. Everything side by side against the best baseline.
    report = build_report(work / "split", runs_root=runs, seed=SEED)
    paths = write_report(report, work / "report")
    print(render_markdown(report))
    print("Report:", paths["html"])


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "nlpkit-demo-py"))
