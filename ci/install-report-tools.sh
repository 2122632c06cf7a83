#!/usr/bin/env bash
# Installs what the report tests need beyond natproof's own host tools: Debian's chromium, run
# headless to open the HTML report (test/e2e/report.test.ts). Run as root. Without it that test
# reports itself skipped and says why; natproof itself never needs a browser.
set -euo pipefail

if ! dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q 'install ok installed'; then
  echo "installing: chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium
fi
echo "report tools ready: $(chromium --version 2>/dev/null)"
