#!/usr/bin/env bash
# Installs what pip cannot: Debian's Chromium for the browser tests (Playwright drives it through
# executable_path; it cannot download its own browser here). Idempotent and quiet when all is present.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
echo "Installing Chromium (apt) for the browser tests..."
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver fonts-dejavu-core >/dev/null
/usr/bin/chromium --version
