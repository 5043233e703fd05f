#!/usr/bin/env bash
# The checks that need an NVIDIA GPU, in one go (a session's GPU machine is lent for minutes; about 8 minutes here):
# host synchronisations per iteration; the built-in tasks' whole training loop at 4096 envs against their raw
# stepping, eager and compile=true; this project against rsl_rl at 4096 envs on mjlab's cart-pole and Go1 velocity
# task (same budget, compile=true); and the CUDA tests (tests/test_cuda.py, including learning runs).
#   bash benchmarks/gpu_checks.sh            # results in benchmarks/results/ (or $GR00T_BENCH_RESULTS)
# PYTEST_ARGS adds pytest options, e.g. PYTEST_ARGS="-n 4" where pytest-xdist is installed.
set -uo pipefail
cd "$(dirname "$0")/.."
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name())" || exit 1
status=0
BUILTIN="Gr00t-Cartpole-v0 Gr00t-Pendulum-SwingUp-v0 Gr00t-Arm-Reach-v0"
python benchmarks/host_syncs.py || status=1
python benchmarks/throughput.py --tasks $BUILTIN --envs 64 512 4096 --frames 131072 --device cuda --tag batched_cuda || status=1
python benchmarks/throughput.py --tasks $BUILTIN --envs 4096 --frames 1048576 --device cuda --set compile=true \
    --tag batched_cuda_compile || status=1
# 4096 envs x 32 steps x 40 iterations; Go1: 4096 x 24 x 30
python benchmarks/compare_rsl_rl.py Mjlab-Cartpole-Balance --device cuda --envs 4096 --steps 5242880 --seeds 1 \
    --set compile=true --tag cuda_envs4096 || status=1
python benchmarks/compare_rsl_rl.py Mjlab-Velocity-Flat-Unitree-Go1 --device cuda --envs 4096 --steps 2949120 --seeds 1 \
    --set compile=true --tag cuda_envs4096 || status=1
python -m pytest -q -p no:cacheprovider ${PYTEST_ARGS:-} tests/test_cuda.py || status=1
exit $status
