#!/usr/bin/env bash
# Set up a virtual environment (.venv, or $WDSR_FAST_VENV) with everything the package, its
# tests and its benchmarks need, and install wdsr_fast into it in editable mode, building the
# C++/CUDA extension wdsr_fast._C.
#
# Safe and quick to run again: the build is redone only when the C++/CUDA sources, the build
# scripts, torch, the CUDA toolkit or the build's environment variables changed
# (scripts/build_stamp.py; the stamp and the build log are kept in the environment).
#
# Environment:
#   WDSR_FAST_TORCH    the torch to install (a pip requirement; default "torch>=2.6")
#   WDSR_FAST_NO_CUDA  1: CPU kernels only, no CUDA code generation (a minute instead of ten)
#   PYTHON             the Python that creates the environment (default python3)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${WDSR_FAST_VENV:-.venv}"
python="${PYTHON:-python3}"
torch_requirement="${WDSR_FAST_TORCH:-torch>=2.6}"
start=$SECONDS

if [ ! -x "$venv/bin/python" ]; then
  echo "wdsr_fast: creating the virtual environment $venv"
  "$python" -m venv "$venv"
fi
py="$venv/bin/python"
pip=("$py" -m pip install --quiet --disable-pip-version-check)

# Build requirements first: the extension is built against the torch of this environment.
echo "wdsr_fast: $torch_requirement and the build tools (installed when missing: minutes)"
"${pip[@]}" "$torch_requirement" "setuptools>=64" wheel ninja pybind11

stamp="$venv/wdsr_fast-build.json"
log="$venv/wdsr_fast-build.log"
if "$py" scripts/build_stamp.py --check "$stamp"; then
  :
else
  echo "wdsr_fast: installing the package, its test dependencies and building its C++ extension"
  echo "wdsr_fast: (full log: $log)"
  build_start=$SECONDS
  rm -f "$stamp"
  # pip -v streams the build; the filter shows what the build says and each compiled file.
  if ! "$py" -m pip install -v --disable-pip-version-check --no-build-isolation \
    -e ".[test,triton]" 2>&1 | tee "$log" | sed -u -n -E \
    -e 's/^ *(wdsr_fast build: .*)/\1/p' \
    -e 's#^ *\[([0-9]+/[0-9]+)\] .* -c (\S*/)?(\S+) .*#  compiled [\1] \3#p' \
    -e 's/^ *(Successfully installed .*)/\1/p'; then
    tail -40 "$log"
    echo "wdsr_fast: the installation failed; the full log is $log" >&2
    exit 1
  fi
  "$py" scripts/build_stamp.py --write "$stamp"
  echo "wdsr_fast: installed in $((SECONDS - build_start)) s"
fi

# Triton's interpreter (the tests' CPU path) needs numpy < 2.4 before Triton 3.7.
numpy_pin="$("$py" scripts/numpy_for_triton.py)"
if [ -n "$numpy_pin" ]; then
  echo "wdsr_fast: installing $numpy_pin (this Triton's interpreter fails with newer numpy)"
  "${pip[@]}" "$numpy_pin"
fi

"$py" -c "import wdsr_fast, json; print(json.dumps(wdsr_fast.build_info()))"
echo "wdsr_fast: set-up done in $((SECONDS - start)) s"
