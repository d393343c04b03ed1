#!/usr/bin/env bash
# `make bench`: installs the peers (idempotently, into bench/.work), then runs the harness.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=bench/.work
mkdir -p "$WORK"
if [ ! -x "$WORK/node_modules/@dbmate/linux-x64/bin/dbmate" ] || [ ! -d "$WORK/node_modules/liquibase" ]; then
  if command -v npm >/dev/null 2>&1; then
    echo "installing dbmate and liquibase@4.28.1 (npm) into $WORK"
    (cd "$WORK" && npm install --silent --no-audit --no-fund dbmate liquibase@4.28.1) \
      || echo "warning: npm install failed; those peers will be reported as not measured"
  else
    echo "warning: no npm: dbmate and Liquibase will be reported as not measured"
  fi
fi
if [ ! -x .venv/bin/yoyo ]; then
  .venv/bin/pip install -q yoyo-migrations || echo "warning: yoyo-migrations not installed"
fi
if ! command -v java >/dev/null 2>&1; then
  echo "warning: no java: Liquibase will be reported as not measured"
fi
exec .venv/bin/python bench/harness.py
