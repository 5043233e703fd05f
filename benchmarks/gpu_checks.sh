#!/usr/bin/env bash
# The checks that need an NVIDIA GPU, in one go (a session's GPU machine is lent for minutes):
# host synchronisations per iteration, throughput of the built-in tasks at 64, 512 and 4096 envs
# against their raw stepping, and the CUDA tests (tests/test_cuda.py, including learning runs).
#   bash benchmarks/gpu_checks.sh            # results in benchmarks/results/ (or $GR00T_BENCH_RESULTS)
# PYTEST_ARGS adds pytest options, e.g. PYTEST_ARGS="-n 4" where pytest-xdist is installed.
set -uo pipefail
cd "$(dirname "$0")/.."
python -c "import torch; assert torch.cuda.is_available(), 'no CUDA device'; print(torch.__version__, torch.cuda.get_device_name())" || exit 1
status=0
python benchmarks/host_syncs.py || status=1
python benchmarks/throughput.py --tasks Gr00t-Cartpole-v0 Gr00t-Pendulum-SwingUp-v0 Gr00t-Arm-Reach-v0 \
    --envs 64 512 4096 --frames 131072 --device cuda --tag batched_cuda || status=1
python -m pytest -q -p no:cacheprovider ${PYTEST_ARGS:-} tests/test_cuda.py || status=1
exit $status
