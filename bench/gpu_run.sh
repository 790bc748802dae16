#!/usr/bin/env bash
# The CUDA checks in one run of about ten minutes on a machine with a GPU:
#   1. train training/configs/multi30k_de_en_full.yaml on the GPU with bf16 autocast for
#      MINUTES of wall-clock time, then score best.pt on val and the three test sets, greedy
#      and beam 5, on the GPU (bench.quality);
#   2. serve that model with `seq2seq serve --device cuda` and load it over loopback at
#      concurrency 1, 32 and 64, against the same server with batching off (bench.serve_load).
# Both write their BENCHMARKS.md sections; BENCHMARKS.md, the training metrics, the curves and
# the logs are copied to $OUT (the device tool brings that folder back).
#
# Prepare the checkout first with bench/gpu_prepare.sh, then, from the repository root:
#   bash bench/gpu_run.sh [MINUTES]          # device tool: carry .whl and .data
set -euo pipefail
cd "$(dirname "$0")/.."
minutes="${1:-5}"
out="${OUT:-runs/gpu_out}"
mkdir -p "$out"

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" SEQ2SEQ_DATA="$PWD/.data/multi30k" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__)"
python3 -c "import datasets, fastapi, pydantic_settings, sacrebleu, sentencepiece, sentencex, uvicorn"

status=0
python3 -m bench.quality --config training/configs/multi30k_de_en_full.yaml \
    --minutes "$minutes" --processes 1 --run-dir runs/gpu --notes '' \
    --section 'Translation quality, GPU (Multi30k de->en)' --train.precision=bf16 \
    2>&1 | tee "$out/quality.log" || status=1
if [ -f runs/gpu/best.pt ]; then
    python3 -m bench.serve_load --model runs/gpu/best.pt --device cuda --threads 0 \
        --concurrency 1 32 64 --requests 2000 --rss-requests 4000 --max-seconds 30 \
        --compare 'process' --client httpx --wait-minutes 0 \
        --section 'Serving load, GPU' 2>&1 | tee "$out/serve.log" || status=1
fi
cp BENCHMARKS.md "$out/"
cp runs/gpu/metrics.jsonl runs/gpu/curves.png "$out/" 2>/dev/null || true
exit "$status"
