#!/usr/bin/env bash
# Executes every notebook in notebooks/ headless with the evcxr Rust kernel (nbconvert), so they
# can never rot: a cell error fails the run. Called by tests/run; also usable alone.
# Installs what is missing: evcxr_jupyter (cargo install, ≈ 6 min once), Jupyter's execution
# stack in a virtualenv. evcxr's build folder (EVCXR_TMPDIR) lives under target/, so a second
# run reuses the compiled workbench and its dependencies.
#   tests/notebooks.sh [NOTEBOOK.ipynb ...]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
svc="$root/.services"
mkdir -p "$svc"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$PATH"
export AIOPS_DATASETS="${AIOPS_DATASETS:-$root/../shared/datasets}"
log() { printf '[tests/notebooks] %s\n' "$*" >&2; }

if ! command -v evcxr_jupyter >/dev/null; then
  log "installing evcxr_jupyter (cargo install --locked, ≈ 6 min)"
  cargo install evcxr_jupyter --locked >"$svc/evcxr-install.log" 2>&1 || { tail -20 "$svc/evcxr-install.log" >&2; exit 1; }
fi
venv="$svc/jupyter"
if [ ! -x "$venv/bin/jupyter-nbconvert" ]; then
  log "installing Jupyter (nbconvert, nbclient) in $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q jupyter-core jupyter-client nbclient nbformat nbconvert >"$svc/jupyter-install.log" 2>&1 \
    || { tail -20 "$svc/jupyter-install.log" >&2; exit 1; }
fi
# The kernel spec and evcxr's settings live under .services, not in the user's home.
export JUPYTER_PATH="$svc/jupyter-data" XDG_CONFIG_HOME="$svc/xdg"  # evcxr_jupyter --install writes to $JUPYTER_PATH/kernels
mkdir -p "$XDG_CONFIG_HOME/evcxr"
echo ":cache 8000" >"$XDG_CONFIG_HOME/evcxr/init.evcxr"
[ -f "$JUPYTER_PATH/kernels/rust/kernel.json" ] || evcxr_jupyter --install >/dev/null
export EVCXR_TMPDIR="$root/target/evcxr"
mkdir -p "$EVCXR_TMPDIR" "$svc/notebooks"
# evcxr resolves the notebooks' dependencies in its own crate: start it from the workspace's
# lock file so notebooks build the same versions the tests ran with.
[ -f "$EVCXR_TMPDIR/Cargo.lock" ] || cp Cargo.lock "$EVCXR_TMPDIR/Cargo.lock"

notebooks=("$@")
[ ${#notebooks[@]} -gt 0 ] || notebooks=(notebooks/*.ipynb)
status=0
for nb in "${notebooks[@]}"; do
  start=$(date +%s)
  # A panic in a cell (an unwrap, an assert) does not fail evcxr's cell: it prints the panic on
  # stderr and the kernel goes on. So the executed notebook's outputs are read for one too.
  if "$venv/bin/jupyter" nbconvert --to notebook --execute --ExecutePreprocessor.kernel_name=rust \
      --ExecutePreprocessor.timeout=2400 --output-dir "$svc/notebooks" "$nb" >"$svc/notebooks/$(basename "$nb").log" 2>&1 \
    && "$venv/bin/python" - "$svc/notebooks/$(basename "$nb")" >>"$svc/notebooks/$(basename "$nb").log" 2>&1 <<'PY'; then
import json, sys
cells = json.load(open(sys.argv[1]))["cells"]
for i, c in enumerate(cells):
    for o in c.get("outputs", []):
        text = "".join(o.get("text", ""))
        if "panicked at" in text:
            sys.exit(f"cell {i} panicked:\n" + "".join(c["source"]) + "\n" + text[:2000])
PY
    log "ok     $nb ($(( $(date +%s) - start )) s)"
  else
    log "FAILED $nb ($(( $(date +%s) - start )) s)"
    tail -25 "$svc/notebooks/$(basename "$nb").log" >&2
    status=1
  fi
done
exit $status
