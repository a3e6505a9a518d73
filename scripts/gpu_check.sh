#!/usr/bin/env bash
# GPU check: on a CUDA machine (no network needed), build the package against that machine's
# torch, run the full tests and the benchmarks, and write one results file pair under
# benchmarks/results/: <card>-<date>.json (environment, test summary, benchmark JSON) and
# <card>-<date>.md (a short table). Commit both.
#
#   bash scripts/gpu_check.sh [OUTPUT_DIR]    (OUTPUT_DIR also receives the raw logs)
#
# STAGES (default "tests bench") picks what runs after the build, e.g. STAGES=tests, so that a
# machine with a per-command time limit can run the stages as separate commands; a stage that
# did not run is reported as not run (exit code -1) in the results file.
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

install=("$python" -m pip install -v --no-build-isolation --no-deps -e .)
"${install[@]}" >"$out/build.log" 2>&1
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
"$python" -c "import wdsr_fast, json; print(json.dumps(wdsr_fast.build_info()))"

stages="${STAGES:-tests bench}"
tests_rc=-1
bench_rc=-1
rm -f "$out/tests.log" "$out/bench.json"
if [[ " $stages " == *" tests "* ]]; then
  "$python" -m pytest -q -p no:cacheprovider tests/ 2>&1 | tee "$out/tests.log"
  tests_rc=${PIPESTATUS[0]}
fi
if [[ " $stages " == *" bench "* ]]; then
  "$python" -m pytest -q -p no:cacheprovider benchmarks/ --benchmark-only \
    --benchmark-json="$out/bench.json" 2>&1 | tee "$out/bench.log"
  bench_rc=${PIPESTATUS[0]}
fi

"$python" - "$out" "$tests_rc" "$bench_rc" "$stages" "$build_rc" "$build_fallback" <<'PY'
import datetime, json, pathlib, re, sys
import torch
import wdsr_fast
from benchmarks.report import markdown_table

out, tests_rc, bench_rc = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
stages = sys.argv[4].split()
build_log = (out / "build.log").read_text(errors="replace").splitlines()
build = {
    "exit_code": int(sys.argv[5]),
    "fallback": sys.argv[6] or None,
    "said": [line.strip() for line in build_log if "wdsr_fast build:" in line],
}
card = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
date = datetime.date.today().isoformat()
stem = re.sub(r"[^A-Za-z0-9.]+", "-", card).strip("-") + "-" + date
if sorted(stages) != ["bench", "tests"]:
    stem += "-" + "-".join(stages)
tests_path = out / "tests.log"
tests_log = tests_path.read_text().strip().splitlines() if tests_path.exists() else []
bench_path = out / "bench.json"
bench = json.loads(bench_path.read_text()) if bench_path.exists() else {"benchmarks": []}
result = {
    "card": card, "date": date, "stages": stages, "build": build,
    "build_info": wdsr_fast.build_info(),
    "tests_exit_code": tests_rc, "tests_summary": tests_log[-1] if tests_log else "",
    "benchmarks_exit_code": bench_rc, "benchmarks": bench,
}
dest = pathlib.Path("benchmarks/results")
(dest / f"{stem}.json").write_text(json.dumps(result, indent=1))
table = markdown_table(bench) if bench["benchmarks"] else "(no benchmark results)\n"
(dest / f"{stem}.md").write_text(
    f"# GPU check: {card}, {date}\n\ntorch {torch.__version__}, build {wdsr_fast.build_info()}\n\n"
    f"Build (exit {build['exit_code']}): {build['fallback'] or '; '.join(build['said'])}\n\n"
    f"Tests (exit {tests_rc}): {result['tests_summary']}\n\n{table}"
)
print(f"wrote {dest / stem}.json and .md")
PY
exit $(( tests_rc > 0 || bench_rc > 0 ))
