"""Learning-curve cost (issue #25): ``nlpkit curve`` over 4 fractions x 3 baselines on Reuters ModApte.

Target: under 2 minutes on 2 cores. The split is the development suite's (``bench/suite.py``, built
under ``--work`` on first use); the command runs as a user runs it (whole CLI process, wall clock).

Usage: python bench/curve_bench.py [--work /tmp/nlpkit-suite] [--fractions 0.1,0.25,0.5,1]
Without the shared data folder it prints what is missing and exits 0.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import suite  # noqa: E402

TARGET_S = 120.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=Path("/tmp/nlpkit-suite"))
    ap.add_argument("--fractions", default="0.1,0.25,0.5,1")
    ap.add_argument("--models", default="tfidf-lr,fasttext,word2vec")
    args = ap.parse_args(argv)
    split = suite.get_split(args.work / "splits", "reuters", 0)
    if split is None:
        print(json.dumps({"skipped": "../shared/data/reuters21578 not found"}))
        return 0
    with tempfile.TemporaryDirectory() as runs:
        cmd = [sys.executable, "-m", "nlpkit", "curve", str(split.path), "--fractions", args.fractions, "--runs-dir",
               runs, "--json", *[x for m in args.models.split(",") for x in ("-m", m)]]
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        wall = time.perf_counter() - t0
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        return 1
    points = json.loads(done.stdout[done.stdout.index("["):])
    for p in points:
        print(f"{p['model']:<10} fraction {p['fraction']:<5g} train {p['n_train']:>6,}  {p['metric']} {p['test']:.4f}")
    print(f"{len(points)} points in {wall:.1f} s wall (load average {load:.1f} before; target < {TARGET_S:.0f} s: "
          f"{'met' if wall < TARGET_S else 'NOT met'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
