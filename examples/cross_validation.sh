#!/usr/bin/env bash
# Cross-validation on the bundled AG News sample: 5 stratified folds, three baselines on every fold,
# then one report comparing them over the folds (corrected resampled t-test).
# Usage: bash examples/cross_validation.sh [WORKDIR]   (default: ./nlpkit-cv; re-running replaces it)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-nlpkit-cv}"
rm -rf "$work"
mkdir -p "$work"
export NLPKIT_RUNS_DIR="$work/runs"

nlpkit split "$here/data/agnews_sample.jsonl" --out "$work/folds" --folds 5 --seed 7
nlpkit baseline "$work/folds" -m majority -m tfidf-lr -m fasttext --seed 7
nlpkit report "$work/folds" --metric accuracy
