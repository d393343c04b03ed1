#!/usr/bin/env bash
# `make bench` (after `deps`): installs the peers idempotently into bench/.work (gitignored),
# then runs bench/harness.py with this script's arguments (`--profile`: `make profile`).
# A peer that fails to install is reported as not measured.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
WORK=${BENCH_WORK:-$REPO/bench/.work}
mkdir -p "$WORK/tmp"
# scratch files of every tool on disk, never /dev/shm (the harness places the datadirs itself)
export TMPDIR="$WORK/tmp"

DBMATE_VERSION=2.36.0
LIQUIBASE_VERSION=4.28.1
YOYO_VERSION=9.0.0
PYSPY_VERSION=0.4.3

if [ ! -x .venv/bin/dbroll ]; then
  echo "bench: .venv/bin/dbroll missing: run 'make bench' (or 'make deps') first" >&2
  exit 2
fi

# `--profile` (make profile) times dbroll and the raw client only: no peers to install
PEERS=1
[ "${1:-}" = "--profile" ] && PEERS=0

# dbmate and Liquibase from npm (Liquibase's package bundles liquibase-core and the
# MariaDB JDBC driver; it runs on the machine's Java)
if [ "$PEERS" = 1 ] && { [ ! -x "$WORK/node_modules/@dbmate/linux-x64/bin/dbmate" ] \
  || [ ! -f "$WORK/node_modules/liquibase/dist/liquibase/liquibase" ]; }; then
  if command -v npm >/dev/null 2>&1; then
    echo "bench: installing dbmate@$DBMATE_VERSION and liquibase@$LIQUIBASE_VERSION (npm) into $WORK"
    [ -f "$WORK/package.json" ] || echo '{"private": true}' >"$WORK/package.json"
    (cd "$WORK" && npm install --no-audit --no-fund --loglevel=error --save-exact \
      "dbmate@$DBMATE_VERSION" "liquibase@$LIQUIBASE_VERSION") \
      || echo "bench: warning: npm install failed; dbmate/Liquibase will be reported as not measured"
  else
    echo "bench: warning: no npm; dbmate and Liquibase will be reported as not measured"
  fi
fi
if [ "$PEERS" = 1 ] && ! command -v java >/dev/null 2>&1; then
  echo "bench: warning: no java; Liquibase will be reported as not measured"
fi

# dbroll as a user installs it: a regular (not editable) install, bytecode compiled at install
# time, in its own venv. The dev venv's editable install adds an import hook to every start,
# and PYTHONDONTWRITEBYTECODE (set on some machines) leaves its bytecode uncompiled: neither is
# what a user's image runs. BENCH_DBROLL=path times another build instead.
install_dbroll() {  # install_dbroll <source dir> <venv>
  [ -x "$2/bin/python" ] || python3 -m venv "$2" || return 1
  "$2/bin/pip" install -q --upgrade --force-reinstall --no-deps "$1" \
    && "$2/bin/pip" install -q "$1"
  local rc=$?
  rm -rf "$1/build"
  return $rc
}
if [ -z "${BENCH_DBROLL:-}" ]; then
  echo "bench: installing this checkout of dbroll into $WORK/venv-dbroll"
  install_dbroll "$REPO" "$WORK/venv-dbroll" || { echo "bench: pip install of dbroll failed" >&2; exit 2; }
  export BENCH_INSTALLED_DBROLL="$WORK/venv-dbroll/bin/dbroll"
fi
# BENCH_BASELINE=<git rev>: that revision too, timed in the same runs (before/after figures)
if [ -n "${BENCH_BASELINE:-}" ]; then
  rev=$(git rev-parse --verify "${BENCH_BASELINE}^{commit}") \
    || { echo "bench: BENCH_BASELINE=$BENCH_BASELINE is not a commit" >&2; exit 2; }
  export BENCH_BASELINE=$rev
  rm -rf "$WORK/baseline-src" && mkdir -p "$WORK/baseline-src"
  git archive "$rev" | tar -x -C "$WORK/baseline-src"
  echo "bench: installing dbroll at ${rev:0:12} into $WORK/venv-dbroll-baseline"
  install_dbroll "$WORK/baseline-src" "$WORK/venv-dbroll-baseline" \
    || { echo "bench: pip install of dbroll at $rev failed" >&2; exit 2; }
  export BENCH_INSTALLED_BASELINE="$WORK/venv-dbroll-baseline/bin/dbroll"
fi

# yoyo-migrations (with PyMySQL) in its own venv, so the project's venv stays as pyproject says
if [ "$PEERS" = 1 ] && [ ! -x "$WORK/venv-yoyo/bin/yoyo" ]; then
  echo "bench: installing yoyo-migrations==$YOYO_VERSION into $WORK/venv-yoyo"
  { python3 -m venv "$WORK/venv-yoyo" \
    && "$WORK/venv-yoyo/bin/pip" install -q "yoyo-migrations==$YOYO_VERSION" "PyMySQL>=1.1"; } \
    || { echo "bench: warning: yoyo-migrations not installed; it will be reported as not measured"
         rm -rf "$WORK/venv-yoyo"; }
fi

# py-spy (a static binary on PyPI) for "where dbroll's time goes", in its own venv: dbroll's
# venv stays what a user's image holds
if [ ! -x "$WORK/venv-tools/bin/py-spy" ]; then
  echo "bench: installing py-spy==$PYSPY_VERSION into $WORK/venv-tools"
  { python3 -m venv "$WORK/venv-tools" \
    && "$WORK/venv-tools/bin/pip" install -q "py-spy==$PYSPY_VERSION"; } \
    || { echo "bench: warning: py-spy not installed; the profile section will say not measured"
         rm -rf "$WORK/venv-tools"; }
fi
[ -x "$WORK/venv-tools/bin/py-spy" ] && export BENCH_INSTALLED_PYSPY="$WORK/venv-tools/bin/py-spy"

if ! command -v mariadb >/dev/null 2>&1; then
  echo "bench: the mariadb client is missing (apt-get install mariadb-client)" >&2
  exit 2
fi

exec .venv/bin/python bench/harness.py "$@"
