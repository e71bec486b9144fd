#!/bin/bash
# Everything this project checks on a CUDA GPU, in one go (about 5 minutes on an H200):
# the CUDA tests, the seed-004 example on the GPU in float32 and bfloat16, one process under
# torchrun (NCCL), benchmarks/gpu.py, and the CPU scaling benchmark on that machine's many
# cores (this project's own machines have 2). Logs go to $1 (default: gpu-check/).
#     OPTIMUS_DATA=../shared/data bash benchmarks/gpu_check.sh [LOG_DIR]
set -u
cd "$(dirname "$0")/.."
logs=${1:-gpu-check}
mkdir -p "$logs"
export PYTHONUNBUFFERED=1
python=${PYTHON:-python3}
step() {  # step NAME SECONDS COMMAND...: run it with a time limit, log it, print its tail
    local name=$1 limit=$2; shift 2
    echo "== $name"
    local start=$SECONDS
    timeout "$limit" "$@" > "$logs/$name.txt" 2>&1
    echo "exit $? after $((SECONDS - start)) s"; tail -n 6 "$logs/$name.txt"
}
$python -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))" || exit 1
step tests 300 $python -m pytest -q -p no:cacheprovider -rs tests/train/test_cuda.py \
    tests/fast/test_engine.py tests/test_devices.py tests/test_serialize.py tests/test_compile.py
step seed004-fp32 300 $python examples/seed004_flux_conv.py --device cuda
step seed004-bf16 300 $python examples/seed004_flux_conv.py --device cuda --precision bf16
step torchrun-nccl 120 $python -m torch.distributed.run --standalone --nproc_per_node=1 \
    examples/seed004_flux_conv.py --device cuda --quick
step gpu-bench 300 bash -c "cd benchmarks && $python gpu.py --rounds 5"
step scaling 300 $python benchmarks/scaling.py --workloads seed004 --rounds 3
