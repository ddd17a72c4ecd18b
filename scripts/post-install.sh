#!/usr/bin/env bash
# After `pip install -e .`: link the labextension into the venv's JupyterLab for development
# (a wheel install ships it prebuilt; an editable install needs the link), and install the npm
# packages jest needs. Argument: the venv's bin directory.
set -euo pipefail
BIN="$1"
if [ -f labextension/package.json ]; then
  # npm install, not npm ci: the lock omits optional rspack binaries for other platforms that this
  # registry does not list, which npm ci refuses and npm install accepts.
  (cd labextension && npm install --no-audit --no-fund --loglevel=error)
  if [ -f live_nb/labextension/package.json ]; then
    # jupyter labextension develop finds jupyter-builder through PATH.
    PATH="$BIN:$PATH" "$BIN/jupyter" labextension develop --overwrite . >/dev/null
  fi
fi
