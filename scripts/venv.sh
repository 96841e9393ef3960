# Sourced by run.sh and test.sh: make sure $VENV holds this project and its pinned torch.
# Re-installs only when requirements.txt or pyproject.toml changed since the last install.
VENV="${VENV:-$PWD/.venv}"
PYTHON="${PYTHON:-python3}"
EXTRAS="${EXTRAS:-}"
stamp="$VENV/.mnist-demo-installed"
want="$(cat requirements.txt pyproject.toml | sha256sum | cut -c1-16)$EXTRAS"
if [ ! -x "$VENV/bin/python" ]; then
  echo "creating virtual environment in $VENV" >&2
  "$PYTHON" -m venv "$VENV"
fi
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "installing mnist-demo and its dependencies into $VENV (torch is large: minutes)" >&2
  # One resolver run with torch and torchvision pinned together, so nothing swaps torch
  # under torchvision (a mismatched pair fails at import: torchvision::nms does not exist).
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
    -r requirements.txt -e ".${EXTRAS:+[$EXTRAS]}"
  "$VENV/bin/python" -c "import torch, torchvision, gradio; print('torch', torch.__version__, \
'torchvision', torchvision.__version__, 'gradio', gradio.__version__)" >&2
  echo "$want" > "$stamp"
fi
