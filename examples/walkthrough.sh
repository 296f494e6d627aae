#!/usr/bin/env bash
# nlpkit end to end on the bundled Reuters sample:
#   inspect -> split -> baseline -> pretrain (tiny) -> finetune -> report
# Usage: bash examples/walkthrough.sh [WORKDIR]   (default: ./nlpkit-demo; re-running replaces it)
# Pretraining and fine-tuning are time-budgeted (90 s and 120 s); NLPKIT_DEMO_PRETRAIN_BUDGET and
# NLPKIT_DEMO_FINETUNE_BUDGET change the budgets (the tests run the walkthrough with short ones).
set -euo pipefail
pretrain_budget="${NLPKIT_DEMO_PRETRAIN_BUDGET:-90s}"
finetune_budget="${NLPKIT_DEMO_FINETUNE_BUDGET:-120}"
here="$(cd "$(dirname "$0")/.." && pwd)"
work="${1:-nlpkit-demo}"
data="$here/data/reuters_sample.jsonl"
rm -rf "$work"
mkdir -p "$work"
export NLPKIT_RUNS_DIR="$work/runs"

echo "== 1. inspect: a first look at the data" >&2
nlpkit inspect "$data"

echo "== 2. split: iterative stratification into train / valid / test" >&2
nlpkit split "$data" --out "$work/split" --test-size 0.2 --valid-size 0.1 --seed 13

echo "== 3. baseline: majority, TF-IDF + LR, fastText, word2vec" >&2
nlpkit baseline "$work/split" --seed 13

echo "== 4. pretrain: a WordPiece tokenizer and a tiny encoder on the training texts (never test)" >&2
# ModernBERT (pre-norm) leaves the unigram plateau within this budget; post-norm BERT tiny does not.
nlpkit pretrain "$work/split" --out "$work/pretrained" --arch modernbert --size tiny --max-length 128 \
  --vocab-size 4000 --time-budget "$pretrain_budget" --seed 13

echo "== 5. finetune: the pretrained encoder as a multi-label classifier" >&2
nlpkit finetune "$work/split" --model "$work/pretrained" --epochs 8 --max-length 128 --lr 3e-4 \
  --time-budget "$finetune_budget" --seed 13

echo "== 6. report: every run against the best baseline" >&2
nlpkit report "$work/split" --out "$work/report"
