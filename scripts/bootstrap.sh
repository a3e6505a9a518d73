#!/usr/bin/env bash
# Set up a virtual environment (.venv, or $WDSR_FAST_VENV) with everything the package, its
# tests and its benchmarks need, and install wdsr_fast into it in editable mode (this builds
# the C++/CUDA extension wdsr_fast._C). Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${WDSR_FAST_VENV:-.venv}"
python="${PYTHON:-python3}"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)
# Build requirements first: the extension is built against the torch of this environment.
"${pip[@]}" "torch>=2.6" "setuptools>=64" wheel ninja pybind11
"${pip[@]}" --no-build-isolation -e ".[test,triton]"
"$venv/bin/python" -c "import wdsr_fast, json; print(json.dumps(wdsr_fast.build_info()))"
