#!/usr/bin/env bash
# The GPU check: what a maintainer runs on a GPU box after `make venv`, offline, in under 8 minutes.
#
#   scripts/gpu_check.sh [OUT]          OUT: a new folder [default: runs/gpu-check-<date>-<time>]
#   DEV=cpu scripts/gpu_check.sh OUT    the same plumbing on the CPU (CI runs it this way)
#   QUICK=1 ...                         leaves out the gpu test runs (make test runs them on its own)
#   BUDGET_S=600 ...                    the whole check's time limit [default: 480 s]
#
# Each item prints PASS, FAIL or SKIP (with its reason) and writes OUT/<item>.log; OUT/summary.txt holds
# the machine's facts and every item's line. Exit 0 when no item FAILed, 1 when one did, 2 on bad usage.
# Work files (dataset, checkpoint, exports) go to OUT/work: send back everything else.

set -u -o pipefail
cd "$(dirname "$0")/.."

DEV=${DEV:-cuda}
QUICK=${QUICK:-0}
BUDGET_S=${BUDGET_S:-480}
BIN=${BIN:-.venv/bin}
OUT=${1:-runs/gpu-check-$(date +%Y%m%d-%H%M%S)}

usage_error() { # one line on stderr, nothing created, exit 2
    echo "error: $1" >&2
    exit 2
}
case $DEV in
    cpu | cuda | cuda:[0-9] | cuda:[0-9][0-9]) ;;
    *) usage_error "DEV=$DEV: not a device; use DEV=cuda, cuda:N or cpu" ;;
esac
case $BUDGET_S in
    '' | *[!0-9]*) usage_error "BUDGET_S=$BUDGET_S: not a whole number of seconds; e.g. BUDGET_S=480" ;;
esac
[ $# -le 1 ] || usage_error "too many arguments ($#); give one output folder"
[ -x "$BIN/python" ] || usage_error "$BIN/python: no virtualenv there; run make venv first (or set BIN)"
if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT" 2>/dev/null || echo x)" ]; then
    usage_error "$OUT: exists and is not empty; name a new folder (earlier results stay as they were)"
fi
mkdir -p "$OUT/work" 2>/dev/null || usage_error "$OUT: cannot create this folder; name a writable place"
OUT=$(cd "$OUT" && pwd)

export DEV QUICK OUT BIN PYTHON="$BIN/python" WORK="$OUT/work"
export PRODSEG_OFFLINE=1 YOLO_OFFLINE=1 HF_HUB_OFFLINE=1 PRODSEG_TEST_DEVICE=$DEV
export MPLBACKEND=Agg PYTHONDONTWRITEBYTECODE=1
SKIP=77 # an item exits with this, its reason on the last line of its output
export SKIP
# The reduced precision the torch backend runs in: fp16 on a GPU; bf16 on a CPU (fp16 autocast is CUDA's).
if [ "$DEV" = cpu ]; then export HALF=bf16; else export HALF=fp16; fi
[ "$DEV" = cpu ] && export CUDA_VISIBLE_DEVICES=""
# DataLoader workers and timed frames: fewer on a CPU, where the whole check shares the cores it measures.
if [ "$DEV" = cpu ]; then export WORKERS=0 FRAMES=24; else export WORKERS=2 FRAMES=96; fi
SUMMARY=$OUT/summary.txt
FAILED=0

# --- items: each prints what it did; its last line is its one-line result -------------------------------

facts() {
    echo "date: $(date -u +%FT%TZ)  host: $(uname -n)  kernel: $(uname -r)"
    local commit changed
    commit=$(git rev-parse --short HEAD 2>/dev/null || echo none)
    changed=$(git status --porcelain 2>/dev/null | wc -l)
    echo "git: $commit, $changed changed file(s)"
    lscpu 2>/dev/null | grep -E '^(Model name|CPU\(s\)):' || true
    "$BIN/pip" freeze >"$OUT/pip-freeze.txt" 2>&1 || true
    "$PYTHON" -c 'import platform, prodseg
print(f"prodseg {prodseg.__version__}, python {platform.python_version()}")'
}

driver() {
    if [ "$DEV" = cpu ]; then echo "DEV=cpu: no GPU asked for"; return "$SKIP"; fi
    command -v nvidia-smi >/dev/null || { echo "nvidia-smi not found: no NVIDIA driver installed"; return 1; }
    nvidia-smi || return 1
    nvidia-smi --query-gpu=index,name,driver_version,memory.total,compute_cap --format=csv || return 1
    local cuda first
    cuda=$(nvidia-smi | grep -o 'CUDA Version: [0-9.]*' | head -1)
    first=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)
    echo "$first, driver's ${cuda:-CUDA Version: ?}, $(nvidia-smi -L | wc -l) GPU(s)"
}

torch_device() {
    "$PYTHON" - <<'EOF'
import os, torch
dev = os.environ["DEV"]
print(f"torch {torch.__version__} built for CUDA {torch.version.cuda}, "
      f"cuDNN {torch.backends.cudnn.version()}")
if dev != "cpu":
    if not torch.cuda.is_available():
        raise SystemExit(f"torch.cuda.is_available() is False: torch {torch.__version__} needs a driver for "
                         f"CUDA {torch.version.cuda} or newer (see the driver item); docs/guides/gpu.md")
    props = torch.cuda.get_device_properties(dev)
    gib = props.total_memory / 2**30
    print(f"{torch.cuda.device_count()} device(s); {dev}: {props.name}, {gib:.1f} GiB, "
          f"compute capability {props.major}.{props.minor}, bf16 {torch.cuda.is_bf16_supported()}")
half = {"cpu": torch.bfloat16}.get(dev, torch.float16)
conv = torch.nn.Conv2d(3, 8, 3).to(dev, memory_format=torch.channels_last)
x = torch.randn(2, 3, 64, 64, device=dev).contiguous(memory_format=torch.channels_last)
with torch.autocast(torch.device(dev).type, dtype=half):
    y = conv(x)
y.float().square().mean().backward()
assert y.dtype == half and torch.isfinite(conv.weight.grad).all()
print(f"conv forward/backward in {half} autocast on {dev}: ok")
EOF
}

# gpu_tests FOLDER: the folder's `gpu` tests on DEV (PASS when some ran and none failed).
gpu_tests() {
    if [ "$QUICK" = 1 ]; then
        echo "QUICK=1: make test runs tests/$1 with PRODSEG_TEST_DEVICE=cpu"
        return "$SKIP"
    fi
    local report rc
    report=$("$PYTHON" -m pytest -q -rs -m gpu -p no:cacheprovider "tests/$1" 2>&1)
    rc=$?
    echo "$report"
    [ "$rc" = 5 ] && { echo "no gpu tests in tests/$1"; return "$SKIP"; }
    [ "$rc" = 0 ] || return "$rc"
    if ! tail -1 <<<"$report" | grep -q passed; then
        echo "every gpu test in tests/$1 skipped (reasons above)"
        return "$SKIP"
    fi
}
tests_train() { gpu_tests train; }
tests_runtime() { gpu_tests runtime; }
tests_bench() { gpu_tests bench; }
tests_export() { gpu_tests export; }

data() {
    "$BIN/prodseg-data" synth "$WORK/data" --images 16 --size 64 --seed 0 || return
    "$BIN/prodseg-data" video "$WORK/shelf.mp4" --frames 48 --size 320x192 --masks "$WORK/masks" || return
    # fast_cpu without trackers and with 2 precise-BN batches: the check times the device, not MLflow.
    "$PYTHON" - <<'EOF' || return
import os
from prodseg.config import load_config
from prodseg.train.cli import resolve_config_path
overrides = {"logging.mlflow": False, "logging.tensorboard": False, "logging.sample_images": 0,
             "training.hyperparameters.precise_bn_batches": 2}
cfg = load_config(resolve_config_path("fast_cpu"), overrides)
open(os.path.join(os.environ["WORK"], "check.yaml"), "w").write(cfg.to_yaml())
EOF
    echo "16 shelf images (64x64), a 48-frame 320x192 video with masks, check.yaml"
}

train() {
    needs "$WORK/check.yaml" data || return "$SKIP"
    "$BIN/prodseg-train" --config "$WORK/check.yaml" --data "$WORK/data" --out "$WORK/runs" --device "$DEV" \
        --epochs 1 --image-size 64 --batch-size 4 --workers "$WORKERS" --amp --no-progress || return
    local ckpt
    ckpt=$(ls "$WORK"/runs/*/best.pt 2>/dev/null | head -1)
    [ -n "$ckpt" ] || { echo "no best.pt under $WORK/runs"; return 1; }
    ln -s "$ckpt" "$WORK/best.pt" && echo "1 epoch of DeepLabV3+ on $DEV: $ckpt"
}

needs() { # needs FILE ITEM: SKIP this item when an earlier one did not make FILE
    [ -e "$1" ] && return 0
    echo "needs $(basename "$1") from the $2 item, which did not make it"
    return 1
}

export_onnx() {
    needs "$WORK/best.pt" train || return "$SKIP"
    "$BIN/prodseg-export" "$WORK/best.pt" --out "$WORK/export" --onnx --calib-data "$WORK/data" \
        --verify-images 4 && echo "model.onnx exported and verified against PyTorch"
}

has_tensorrt() {
    "$PYTHON" -c 'import tensorrt, cuda.bindings; assert hasattr(tensorrt, "Builder")' 2>/dev/null
}

export_trt() {
    if [ "$DEV" = cpu ]; then echo "DEV=cpu: TensorRT engines need a GPU"; return "$SKIP"; fi
    if ! has_tensorrt; then
        echo "TensorRT is not importable: pip install 'prodseg[tensorrt]' to check it"
        return "$SKIP"
    fi
    needs "$WORK/best.pt" train || return "$SKIP"
    "$BIN/prodseg-export" "$WORK/best.pt" --out "$WORK/export-trt" --fp16 --int8 --trt \
        --calib-data "$WORK/data" --calib-images 16 --verify-images 4 || return
    ls "$WORK"/export-trt/*.engine && echo "engines: $(cd "$WORK/export-trt" && echo *.engine)"
}

# bench NAME MODEL [ARGS...]: prodseg-bench on the synthetic video, scored against its masks.
bench() {
    local name=$1 model=$2
    shift 2
    "$BIN/prodseg-bench" "$WORK/shelf.mp4" --model "$model" --device "$DEV" --frames "$FRAMES" --warmup 2 \
        --gt-masks "$WORK/masks" --json "$OUT/bench-$name.json" "$@" || return
    BENCH_JSON="$OUT/bench-$name.json" "$PYTHON" - <<'EOF'
import json, os
for r in json.load(open(os.environ["BENCH_JSON"]))["results"]:
    fps, miou = r["fps_e2e"], r["accuracy"]["miou"]
    print(f"{r['backend']} {r['precision']} on {r['device']}: {fps:.1f} FPS end to end, mIoU {miou}")
EOF
}

bench_torch() {
    needs "$WORK/best.pt" train || return "$SKIP"
    bench torch "$WORK/best.pt" --precision "$HALF" --channels-last
}

ort_provider() { # the execution provider onnxruntime needs for DEV, or a SKIP reason
    "$PYTHON" - <<'EOF'
import os, onnxruntime as ort
want = "CPUExecutionProvider" if os.environ["DEV"] == "cpu" else "CUDAExecutionProvider"
have = ort.get_available_providers()
print(want if want in have else f"onnxruntime {ort.__version__} has no {want} ({', '.join(have)}): "
      "pip install onnxruntime-gpu in place of onnxruntime to check it")
EOF
}

bench_onnx() {
    needs "$WORK/export/model.onnx" export_onnx || return "$SKIP"
    local provider
    provider=$(ort_provider | tail -1)
    [[ $provider == *ExecutionProvider ]] || { echo "$provider"; return "$SKIP"; }
    bench onnx "$WORK/export/model.onnx" --backend onnxruntime
}

bench_trt() {
    if [ "$DEV" = cpu ]; then echo "DEV=cpu: TensorRT engines need a GPU"; return "$SKIP"; fi
    local engines=("$WORK"/export-trt/*.engine) more=() engine
    [ -e "${engines[0]}" ] || { echo "no TensorRT engine was built (see export_trt)"; return "$SKIP"; }
    for engine in "${engines[@]:1}"; do more+=(--model "$engine"); done
    bench trt "${engines[0]}" "${more[@]}" --backend tensorrt
}

ort_device() {
    needs "$WORK/export/model.onnx" export_onnx || return "$SKIP"
    local provider
    provider=$(ort_provider | tail -1)
    [[ $provider == *ExecutionProvider ]] || { echo "$provider"; return "$SKIP"; }
    "$PYTHON" - <<'EOF'
import os, numpy as np, prodseg.runtime as rt
from prodseg.runtime.sources import open_video
dev, work = os.environ["DEV"], os.environ["WORK"]
ref = rt.load(f"{work}/export/model.onnx", backend="onnxruntime", device="cpu")
run = rt.load(f"{work}/export/model.onnx", backend="onnxruntime", device=dev)
used = run.runner.session.get_providers()
print("providers in use:", used)
want = "CPUExecutionProvider" if dev == "cpu" else "CUDAExecutionProvider"
if used[0] != want:
    raise SystemExit(f"onnxruntime fell back to {used[0]} (its log above says why)")
source, same = open_video(f"{work}/shelf.mp4", "shelf.mp4"), []
for frame, _ in zip(source, range(16)):
    same.append(float((ref.predict_frame(frame).label_map == run.predict_frame(frame).label_map).mean()))
source.close()
if min(same) < 0.99:
    raise SystemExit(f"labels on {dev} agree with the CPU provider's on only {min(same):.4f} "
                     "of a frame's pixels")
print(f"{want} runs model.onnx; labels agree with the CPU provider's on >= {min(same):.4f} of each frame")
EOF
}

# --- the run -----------------------------------------------------------------------------------------------

# ITEM:SECONDS in order: the end-to-end run first, then the test folders. Each item stops at its own limit
# and the whole check at BUDGET_S (8 minutes by default): an item left without time FAILs (too slow).
ITEMS=(facts:20 driver:15 torch_device:45 data:30 train:60 export_onnx:60 export_trt:150 bench_torch:40
    bench_onnx:40 bench_trt:60 ort_device:40 tests_train:120 tests_runtime:60 tests_bench:60 tests_export:120)
export -f facts driver torch_device gpu_tests tests_train tests_runtime tests_bench tests_export data train \
    needs export_onnx has_tensorrt export_trt bench bench_torch ort_provider bench_onnx bench_trt ort_device
DEADLINE=$((SECONDS + BUDGET_S))

{
    echo "prodseg GPU check, DEV=$DEV QUICK=$QUICK, $(date -u +%FT%TZ)"
    echo "output: $OUT"
} | tee "$SUMMARY"
for entry in "${ITEMS[@]}"; do
    name=${entry%%:*} limit=${entry##*:} log="$OUT/$name.log" start=$SECONDS
    left=$((DEADLINE - SECONDS))
    [ "$left" -lt "$limit" ] && limit=$left
    if [ "$limit" -le 0 ]; then
        echo "not run: the check's $BUDGET_S s were used up by the items before it" >"$log"
        false
    else
        timeout --kill-after=5 "$limit" bash -c "$name" >"$log" 2>&1
    fi
    rc=$?
    case $rc in
        0) status=PASS ;;
        "$SKIP") status=SKIP ;;
        124 | 137) status=FAIL && echo "timed out after ${limit}s" >>"$log" ;;
        *) status=FAIL ;;
    esac
    [ "$status" = FAIL ] && FAILED=$((FAILED + 1))
    detail=$(grep -v '^[[:space:]]*$' "$log" | tail -1 | cut -c1-200)
    printf '%-4s %-13s %4ds  %s\n' "$status" "$name" "$((SECONDS - start))" "${detail:-(no output)}" |
        tee -a "$SUMMARY"
done
result="RESULT: PASS (no item failed)"
[ "$FAILED" = 0 ] || result="RESULT: FAIL ($FAILED item(s))"
echo "$result" | tee -a "$SUMMARY"
echo "send back: tar czf gpu-check.tgz --exclude=work -C $(dirname "$OUT") $(basename "$OUT")"
[ "$FAILED" = 0 ]
