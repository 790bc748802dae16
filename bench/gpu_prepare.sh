#!/usr/bin/env bash
# Get a checkout ready for bench/gpu_run.sh on a GPU machine that has PyTorch, SentencePiece and
# sacrebleu but no network: fetch Python 3.12 wheels of the packages such an image lacks into
# .whl/, and copy Multi30k into .data/multi30k/ (both git-ignored through .git/info/exclude).
# The versions are the ones installed in .venv, the ones CI tests.
#
#   bash bench/gpu_prepare.sh            # here, with .venv built and ../shared/data present
set -euo pipefail
cd "$(dirname "$0")/.."

MISSING=(datasets dill multiprocess fastapi starlette pydantic pydantic_core pydantic-settings
         python-dotenv annotated-types typing-inspection typing_extensions uvicorn sentencex)

for path in /.whl/ /.data/; do
    grep -qxF "$path" .git/info/exclude 2>/dev/null || echo "$path" >> .git/info/exclude
done

data="${SEQ2SEQ_DATA:-../shared/data/multi30k}"
[ -f "$data/train.de.gz" ] || { echo "Multi30k not found at $data (set SEQ2SEQ_DATA)" >&2; exit 2; }
mkdir -p .data/multi30k
cp "$data"/*.gz .data/multi30k/

pins=()
for name in "${MISSING[@]}"; do
    version=$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('$name'))")
    pins+=("$name==$version")
done
rm -rf .whl
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "${pins[@]}"
du -sh .whl .data
echo "ready: bash bench/gpu_run.sh on the GPU machine, carrying .whl and .data"
