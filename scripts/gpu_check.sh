#!/usr/bin/env bash
# GPU check: on a CUDA machine (no network needed), build the package against that machine's
# torch, run the full tests, time each Triton kernel of the blocks beside its static bound
# (python -m wdsr_fast.kernels.aot.measure --static, at 1x540x960 and 16x48x48) and run the
# benchmarks; write one results file pair under benchmarks/results/: <card>-<date>.json
# (environment, test summary, kernel times, benchmark results) and <card>-<date>.md (tables).
# Commit both.
#
#   bash scripts/gpu_check.sh [OUTPUT_DIR]    (OUTPUT_DIR also receives the raw logs)
#
# Environment, for machines lent for a limited time:
#   STAGES             what runs after the build, in this order (default "tests kernels bench");
#                      a stage that did not run is reported as not run (exit code -1). The
#                      stage "sweep" (not run by default) times the WDSR-B block's candidate
#                      launch configurations beside its default one (python -m
#                      wdsr_fast.kernels.aot.sweep --measure, forward and backward, 1x540x960
#                      and 16x48x48), e.g. STAGES="kernels sweep" for a tuning run.
#   GPU_CHECK_SECONDS  time for the whole script: each stage runs under `timeout` with what is
#                      left (less 30 s kept for the results file); a stage stopped by it reports
#                      exit code 124, and the benchmarks that finished before are kept.
#   TESTS_SECONDS      at most this long for the tests, to leave time for the stages after.
#   TEST_ARGS          extra pytest arguments for the tests, e.g. "-n 16" where pytest-xdist is.
#   TEST_PATHS         the test files or folders to run (default: tests/, all of them).
#   BENCH_FILES        the benchmark files, in the order they run (default: all of benchmarks/).
#                      Each runs in its own pytest, so a stopped file loses only its own rest.
#
# The tests and benchmarks run whatever happens to the C++ build: a CUDA toolkit that does not
# match torch gives the CPU extension (setup_cuda.py), and a build that fails outright gives the
# pure-Python package; the Triton kernels need neither. The results file records the outcome.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-benchmarks/results}"
mkdir -p "$out" benchmarks/results
python="${PYTHON:-python3}"
export PYTHONUNBUFFERED=1
deadline=$((SECONDS + ${GPU_CHECK_SECONDS:-86400} - 30))

# Run "$@" under `timeout` with the seconds left before the deadline, or $STAGE_CAP seconds if
# fewer (exit 124 when it is stopped or no time is left). It is stopped with SIGINT, which pytest
# answers by reporting what it ran so far, and killed 15 s later if still running.
within_deadline() {
  local left=$((deadline - SECONDS))
  if [ -n "${STAGE_CAP:-}" ] && [ "$STAGE_CAP" -lt "$left" ]; then
    left=$STAGE_CAP
  fi
  if [ "$left" -le 0 ]; then
    echo "gpu_check: no time left for: $*"
    return 124
  fi
  timeout -s INT -k 15 "$left" "$@"
}

install=("$python" -m pip install -v --no-build-isolation --no-deps -e .)
within_deadline "${install[@]}" >"$out/build.log" 2>&1
build_rc=$?
build_fallback=""
if [ "$build_rc" -ne 0 ]; then
  tail -50 "$out/build.log"
  echo "the extension did not build: installing the pure-Python package (Triton kernels only)"
  build_fallback="pure-Python package: the extension did not build (exit $build_rc, build.log)"
  rm -f wdsr_fast/_C*.so  # a library left by an earlier build is not this torch's
  WDSR_FAST_BUILD_EXTENSION=0 "${install[@]}" >>"$out/build.log" 2>&1 \
    || { tail -20 "$out/build.log"; echo "the pure-Python install failed too"; exit 1; }
fi
grep -E "^ *wdsr_fast build:" "$out/build.log" | sed -E 's/^ +//'
echo "gpu_check: build done at $SECONDS s (exit $build_rc)"
"$python" -c "import wdsr_fast, json; print(json.dumps(wdsr_fast.build_info()))"

stages="${STAGES:-tests kernels bench}"
tests_rc=-1
kernels_rc=-1
sweep_rc=-1
bench_rc=-1
record="$out/bench-record.jsonl"
times_dir="$(mktemp -d)"
rm -f "$out/tests.log" "$out/kernels.log" "$out/sweep.log" "$out/bench.log" "$record"
if [[ " $stages " == *" tests "* ]]; then
  # shellcheck disable=SC2086  # TEST_ARGS and TEST_PATHS are lists of words
  STAGE_CAP="${TESTS_SECONDS:-}" within_deadline "$python" -m pytest -q -p no:cacheprovider \
    ${TEST_ARGS:-} ${TEST_PATHS:-tests/} 2>&1 \
    | tee "$out/tests.log"
  tests_rc=${PIPESTATUS[0]}
  echo "gpu_check: tests done at $SECONDS s (exit $tests_rc)"
fi
if [[ " $stages " == *" kernels "* ]]; then
  kernels_rc=0
  for input in "540x960 1" "48x48 16"; do
    read -r size batch <<<"$input"
    within_deadline "$python" -m wdsr_fast.kernels.aot.measure --size "$size" --batch "$batch" \
      --static --json >"$times_dir/$size-$batch.json" 2>>"$out/kernels.log"
    rc=$?
    [ "$rc" -ne 0 ] && kernels_rc=$rc && rm -f "$times_dir/$size-$batch.json"
  done
  tail -5 "$out/kernels.log"
  echo "gpu_check: kernel times done at $SECONDS s (exit $kernels_rc)"
fi
if [[ " $stages " == *" sweep "* ]]; then
  sweep_rc=0
  arch=$("$python" -c "import torch; m, n = torch.cuda.get_device_capability(); print(10 * m + n)")
  for input in "540x960 1" "48x48 16"; do
    read -r size batch <<<"$input"
    for stage in forward backward; do
      name="sweep-$stage-$size-$batch.json"
      within_deadline "$python" -m wdsr_fast.kernels.aot.sweep --stage "$stage" --arch "$arch" \
        --size "$size" --batch "$batch" --measure --json >"$times_dir/$name" 2>>"$out/sweep.log"
      rc=$?
      [ "$rc" -ne 0 ] && sweep_rc=$rc && rm -f "$times_dir/$name"
    done
  done
  tail -5 "$out/sweep.log"
  echo "gpu_check: configuration sweeps done at $SECONDS s (exit $sweep_rc)"
fi
if [[ " $stages " == *" bench "* ]]; then
  bench_rc=0
  for file in ${BENCH_FILES:-benchmarks/test_bench_*.py}; do
    WDSR_FAST_BENCH_RECORD="$record" within_deadline "$python" -m pytest -q \
      -p no:cacheprovider "$file" --benchmark-only 2>&1 | tee -a "$out/bench.log"
    rc=${PIPESTATUS[0]}
    [ "$rc" -ne 0 ] && bench_rc=$rc
    echo "gpu_check: $file done at $SECONDS s (exit $rc)"
  done
fi

"$python" - "$out" "$tests_rc" "$bench_rc" "$stages" "$build_rc" "$build_fallback" \
  "$kernels_rc" "$times_dir" "$sweep_rc" <<'PY'
import datetime, json, pathlib, platform, re, sys
import torch
import triton
import wdsr_fast
from benchmarks.report import markdown_table
from wdsr_fast.kernels.aot.measure import format_times
from wdsr_fast.kernels.aot.sweep import format_rows

out, tests_rc, bench_rc = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
stages = sys.argv[4].split()
kernels_rc, times_dir = int(sys.argv[7]), pathlib.Path(sys.argv[8])
kernel_times = [json.loads(p.read_text()) for p in sorted(times_dir.glob("[0-9]*.json"))]
sweep_rc = int(sys.argv[9])
sweeps = {p.stem: json.loads(p.read_text()) for p in sorted(times_dir.glob("sweep-*.json"))}
build_log = (out / "build.log").read_text(errors="replace").splitlines()
build = {
    "exit_code": int(sys.argv[5]),
    "fallback": sys.argv[6] or None,
    "said": [line.strip() for line in build_log if "wdsr_fast build:" in line],
}
card = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
date = datetime.date.today().isoformat()
stem = re.sub(r"[^A-Za-z0-9.]+", "-", card).strip("-") + "-" + date
if sorted(stages) != ["bench", "kernels", "tests"]:
    stem += "-" + "-".join(stages)
tests_path = out / "tests.log"
tests_log = tests_path.read_text().strip().splitlines() if tests_path.exists() else []
record = out / "bench-record.jsonl"
lines = record.read_text().splitlines() if record.exists() else []
bench = {"benchmarks": [json.loads(line) for line in lines]}
result = {
    "card": card, "date": date, "stages": stages, "build": build,
    "versions": {"python": platform.python_version(), "torch": torch.__version__,
                 "triton": triton.__version__, "cuda": torch.version.cuda},
    "build_info": wdsr_fast.build_info(),
    "tests_exit_code": tests_rc, "tests_summary": tests_log[-1] if tests_log else "",
    "kernel_times_exit_code": kernels_rc, "kernel_times": kernel_times,
    "sweeps_exit_code": sweep_rc, "sweeps": sweeps,
    "benchmarks_exit_code": bench_rc, "benchmarks": bench,
}
dest = pathlib.Path("benchmarks/results")
(dest / f"{stem}.json").write_text(json.dumps(result, indent=1))
table = markdown_table(bench) if bench["benchmarks"] else "(no benchmark results)\n"
times = "\n\n".join(format_times(t) for t in kernel_times) or "(no kernel times)"
sweep_text = "\n\n".join(f"{name}\n{format_rows(rows)}" for name, rows in sweeps.items())
(dest / f"{stem}.md").write_text(
    f"# GPU check: {card}, {date}\n\ntorch {torch.__version__}, Triton {triton.__version__}, "
    f"build {wdsr_fast.build_info()}\n\n"
    f"Build (exit {build['exit_code']}): {build['fallback'] or '; '.join(build['said'])}\n\n"
    f"Tests (exit {tests_rc}): {result['tests_summary']}\n\n"
    f"Kernel times (exit {kernels_rc})\n\n```\n{times}\n```\n\n"
    + (f"Configuration sweeps (exit {sweep_rc})\n\n```\n{sweep_text}\n```\n\n" if sweeps else "")
    + f"Benchmarks (exit {bench_rc})\n\n{table}"
)
print(f"wrote {dest / stem}.json and .md")
PY
exit $(( tests_rc > 0 || kernels_rc > 0 || sweep_rc > 0 || bench_rc > 0 ))
