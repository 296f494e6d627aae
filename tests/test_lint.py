"""The code passes the linter with the rules pinned in pyproject.toml ([tool.ruff.lint])."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_ruff_finds_nothing():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "nlpkit", "tests", "bench", "examples"],
                          cwd=REPO, capture_output=True, text=True)
    assert "No module named ruff" not in proc.stderr, "ruff is a dev dependency: pip install -e '.[dev]'"
    assert proc.returncode == 0, proc.stdout + proc.stderr
