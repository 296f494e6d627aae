"""The README's main job, `bash examples/walkthrough.sh`, and its Python twin, end to end on the
bundled data (with short pretraining and fine-tuning budgets: the steps, options and files are the
walkthrough's own)."""

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MODELS = {"majority", "tfidf-lr", "fasttext", "word2vec", "transformer"}


def _report_models(report_dir: Path) -> set[str]:
    report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    assert (report_dir / "report.html").is_file() and (report_dir / "report.md").is_file()
    return {row["model"] for row in report["rows"]}


@pytest.mark.slow
def test_walkthrough_script_runs_end_to_end(tmp_path):
    assert shutil.which("nlpkit"), "the nlpkit command must be installed (pip install -e .)"
    work = tmp_path / "demo"
    env = {**os.environ, "NLPKIT_DEMO_PRETRAIN_BUDGET": "5s", "NLPKIT_DEMO_FINETUNE_BUDGET": "10"}
    done = subprocess.run(["bash", str(EXAMPLES / "walkthrough.sh"), str(work)], capture_output=True, text=True,
                          timeout=900, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.rstrip().endswith(f"Report: {work / 'report' / 'report.html'}")
    for step in ("1. inspect", "2. split", "3. baseline", "4. pretrain", "5. finetune", "6. report"):
        assert f"== {step}" in done.stderr
    assert _report_models(work / "report") == MODELS
    assert (work / "pretrained" / "config.json").is_file()


@pytest.mark.slow
def test_walkthrough_python_runs_end_to_end(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("walkthrough", EXAMPLES / "walkthrough.py")
    walkthrough = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(walkthrough)
    work = tmp_path / "demo-py"
    walkthrough.main(work, pretrain_seconds=5, finetune_seconds=10)
    out = capsys.readouterr().out
    assert "tfidf-lr: micro-F1 " in out and "finetune: micro-F1 " in out
    assert out.rstrip().endswith(f"Report: {work / 'report' / 'report.html'}")
    assert _report_models(work / "report") == MODELS
