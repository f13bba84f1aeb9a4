#!/usr/bin/env bash
# The GPU path in one prepared command: `make gpu-check` or `bash benchmarks/gpu_check.sh OUT_DIR`.
#
# On a machine with CUDA it runs, in under 10 minutes and without installing anything (plain
# python3 with PYTHONPATH=.; needs torch, torchvision, numpy, pyyaml, typer, rich, pandas, not
# `datasets`):
#   1. the CUDA-marked tests (tests/runtime/test_cuda.py)                             -> tests.log, tests.xml
#   2. benchmarks/corruptions.py --device cuda: 19 x 5 over 10,000 images     -> corruptions.jsonl
#   3. benchmarks/eval_throughput.py --device cuda: ResNet-18, clean + 19 x 5 -> eval.jsonl
#   4. benchmarks/augment.py --device cuda: batches of 512 and 4096           -> augment.jsonl
#   5. benchmarks/train_step.py --device cuda --model resnet18 (+ epochs)     -> train_step.jsonl
#   6. benchmarks/family_device.py --device cuda: ImageNet-C at 224 px, Tiny-ImageNet-C, C-bar,
#      CIFAR-10-P and streamed JPEG eval with a ResNet-50, each against its target -> family.jsonl
# and writes summary.md (each figure next to its target) into OUT_DIR. Each step has a time
# limit, so a hang costs that step only; the exit status is 1 if any step failed.
# Without CUDA it says so in one line and exits 0.
set -u
OUT=${1:-gpu-check}
PYTHON=${PYTHON:-python3}
cd "$(dirname "$0")/.."
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"

if ! "$PYTHON" -c "import torch" 2>/dev/null; then
    echo "gpu-check: $PYTHON cannot import torch; run it with a Python that has torch (PYTHON=.venv/bin/python)" >&2
    exit 2
fi
if ! "$PYTHON" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "gpu-check: no CUDA device here (torch.cuda.is_available() is False): nothing to check, exiting 0"
    exit 0
fi
mkdir -p "$OUT"
"$PYTHON" -c "import torch; print(f'gpu-check on {torch.cuda.get_device_name()} (torch {torch.__version__}, CUDA {torch.version.cuda})')" | tee "$OUT/device.txt"
failed=0

step() {  # step NAME SECONDS COMMAND...: stdout to NAME.jsonl, stderr to NAME.log
    local name=$1 limit=$2 started=$SECONDS
    shift 2
    echo "-- $name (limit ${limit}s): $*"
    timeout --kill-after=10 "$limit" "$@" > "$OUT/$name.jsonl" 2> "$OUT/$name.log"
    local rc=$?
    echo "   $name: exit $rc after $((SECONDS - started))s"
    echo "{\"step\": \"$name\", \"exit\": $rc, \"seconds\": $((SECONDS - started))}" >> "$OUT/steps.jsonl"
    [ "$rc" = 0 ] || failed=1
}

rm -f "$OUT/steps.jsonl"
step tests 120 "$PYTHON" -m pytest tests/runtime/test_cuda.py -q -p no:cacheprovider --junitxml="$OUT/tests.xml"
step corruptions 45 "$PYTHON" benchmarks/corruptions.py --device cuda --n 10000
step eval 120 "$PYTHON" benchmarks/eval_throughput.py --device cuda --model resnet18 --n 10000 --corruptions 19 \
    --reference-corruptions 1 --batch-size 1000 --workers 8
step augment 45 "$PYTHON" benchmarks/augment.py --device cuda --cuda-batches 512,4096 --repeats 5
step train_step 80 "$PYTHON" benchmarks/train_step.py --device cuda --model resnet18 --batch 128 --repeats 10 \
    --epoch-images 50000
step family 150 "$PYTHON" benchmarks/family_device.py --device cuda --n224 500 --n64 1000 --n32 1000 \
    --sequences 500 --stream 1000
mv "$OUT/tests.jsonl" "$OUT/tests.txt"  # pytest's own report, not JSON
"$PYTHON" benchmarks/gpu_summary.py "$OUT" > "$OUT/summary.md" && cat "$OUT/summary.md"
exit $failed
