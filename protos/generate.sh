#!/usr/bin/env bash
# Generates the Python package `attune` from the protos into the folder $1.
# Needs the project venv's python (grpcio-tools, mypy-protobuf) first on PATH.
set -euo pipefail
out=${1:?usage: generate.sh OUTPUT_DIR}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
mapfile -t protos < <(cd "$here" && find attune -name '*.proto' | sort)
python -m grpc_tools.protoc -I "$here" \
  --python_out="$out" --grpc_python_out="$out" --mypy_out="$out" --mypy_grpc_out="$out" \
  "${protos[@]}" 2> >(grep -v "^Writing mypy to" >&2)
find "$out/attune" -type d ! -name __pycache__ -exec touch {}/__init__.py \;
touch "$out/attune/py.typed"
