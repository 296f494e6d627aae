#!/usr/bin/env bash
# Issue #26's GPU part as one prepared run of about 5 minutes on one H100 or H200.
#
#   bash bench/gpu_check.sh --prepare   # here, on the CPU machine: writes .gpu/ (ignored by git): the
#                                       # Reuters split of bench/suite.py and a CPU-made tfidf-lr run on it
#   bash bench/gpu_check.sh [OUT]       # on the GPU machine (carry .gpu): results under OUT (default $OUT)
#   GPU_CHECK_SMALL=1 bash bench/gpu_check.sh /tmp/g   # the same steps, tiny, to test the script on a CPU
#
# Steps, most important first, each under its own time limit so that one slow step leaves the others
# their time: (1) bench/pretrain_bench.py, base preset, length 128, bf16, both sides compiled: tokens/s
# and MFU against the dense bf16 peak (PEAK_FLOPS, default 989e12: H100 SXM and H200 datasheets);
# (2) bench/finetune_bench.py: fine-tuning docs/s of a base-size model, nlpkit against the Trainer with
# bf16 (the model pretrained in step 3, or a fresh one); (3) pretrain -> finetune -> report on Reuters.
# The GPU machine has no ../shared and no registry: everything it reads travels in .gpu/.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python3}
GPU=.gpu

if [ "${1:-}" = "--prepare" ]; then
  $PY bench/suite.py --datasets reuters --models majority --work "$GPU/suite" >/dev/null || exit 1
  rm -rf "$GPU/reuters" "$GPU/runs" && cp -r "$GPU/suite/splits/reuters" "$GPU/reuters" && rm -rf "$GPU/suite"
  $PY -m nlpkit baseline "$GPU/reuters" -m tfidf-lr --runs-dir "$GPU/runs" --seed 0 || exit 1
  grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >> .git/info/exclude
  du -sh "$GPU"
  exit 0
fi

OUT_DIR=${1:-${OUT:?give an output folder}}
mkdir -p "$OUT_DIR"
[ -f "$GPU/reuters/train.jsonl" ] || { echo "no $GPU/reuters: run 'bash bench/gpu_check.sh --prepare' first, then carry .gpu" >&2; exit 2; }
W=$(mktemp -d)
cp -r "$GPU/runs" "$W/runs"  # the runs this script adds go there: .gpu stays as prepared, for a rerun
LOG="$OUT_DIR/log.txt"
PEAK=${PEAK_FLOPS:-989e12}
if [ -n "${GPU_CHECK_SMALL:-}" ]; then  # a CPU rehearsal: tiny model, few steps, short budgets
  SIZE=tiny BATCH=16 STEPS=12 SKIP=4 BUDGET_PRE=15s BUDGET_FT=15s DOCS=64 FT_BATCH=16 COMPILE=
else
  SIZE=base BATCH=256 STEPS=50 SKIP=20 BUDGET_PRE=60s BUDGET_FT=45s DOCS=3000 FT_BATCH=32 COMPILE=--compile
fi
step() {  # step NAME LIMIT_SECONDS COMMAND...: run it, log it, never stop the script
  local name=$1 limit=$2; shift 2
  echo "== $name: $(date -u +%T) $*" | tee -a "$LOG"
  timeout "$limit" "$@" >>"$LOG" 2>&1
  echo "== $name: exit $? at $(date -u +%T)" | tee -a "$LOG"
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1 || echo "no nvidia-smi"
  $PY -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'device', torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'cpu', 'transformers', transformers.__version__)"
  nproc; } > "$OUT_DIR/env.txt" 2>&1
cat "$OUT_DIR/env.txt"

# (1) pretraining throughput and MFU, nlpkit against the Trainer with bf16, both compiled
step pretrain-bench 150 $PY bench/pretrain_bench.py --corpus "$GPU/reuters/train.jsonl" --size $SIZE \
  --max-length 128 --batch-size $BATCH --lr 5e-4 --steps $STEPS --skip $SKIP --repeats 1 --threads 8 \
  --sides nlpkit,trainer-bf16 --peak-flops "$PEAK" $COMPILE --json "$OUT_DIR/pretrain_bench.json"

# (3, first half) a base model pretrained on Reuters train at GPU speed, recorded as a run
step pretrain 120 $PY -m nlpkit pretrain "$GPU/reuters" --out "$W/bert" --size $SIZE --max-length 128 \
  --batch-size $BATCH --time-budget $BUDGET_PRE $COMPILE --runs-dir "$W/runs" --seed 0 --overwrite

# (2) fine-tuning docs/s of that base-size model: nlpkit against the careful Trainer (bf16, grouped, dynamic padding)
if [ -f "$W/bert/config.json" ]; then
  step finetune-bench 90 $PY bench/finetune_bench.py compare --model "$W/bert" --data "$GPU/reuters" \
    --docs $DOCS --batch-size $FT_BATCH --max-length 128 --rounds 1 --threads 8 \
    --sides nlpkit,trainer-careful --out "$OUT_DIR/finetune_bench.json"
  # (3, second half) fine-tune it on the split and report every run against the CPU-made baseline
  step finetune 100 $PY -m nlpkit finetune "$GPU/reuters" --model "$W/bert" --max-length 128 \
    --time-budget $BUDGET_FT --runs-dir "$W/runs" --seed 0 --json
  step report 60 $PY -m nlpkit report "$GPU/reuters" --runs-dir "$W/runs" --format md --out "$W/report"
  cp "$W/report/report.md" "$OUT_DIR/report.md" 2>/dev/null
fi
rm -rf "$W"
grep '^== ' "$LOG"
