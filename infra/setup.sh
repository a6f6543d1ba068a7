#!/usr/bin/env bash
# Idempotent set-up for a fresh machine: Java 17, the SQLite JDBC driver, chromium, .venv with the pinned packages.
# Re-running it when everything is present takes a second or two.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[setup] %s\033[0m\n' "$*" >&2; exit 1; }

# --- Debian packages: Java 17, the SQLite JDBC driver, chromium (the dashboard's browser test) ---------------------
missing=()
if ! java -version 2>&1 | grep -q 'version "17'; then missing+=(openjdk-17-jre-headless); fi
if [ ! -f /usr/share/java/xerial-sqlite-jdbc.jar ]; then missing+=(libxerial-sqlite-jdbc-java); fi
if ! command -v chromium >/dev/null; then missing+=(chromium); fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    die "missing system packages: ${missing[*]}. Install them, e.g. 'sudo apt-get install ${missing[*]}', then re-run."
  fi
fi

# --- Python virtualenv -----------------------------------------------------------------------------------------
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  for candidate in python3.11 python3.12 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] < (3, 13)))'; then
      PY=$candidate; break
    fi
  done
fi
[ -n "$PY" ] || die "Python 3.11 or 3.12 is required (the Iceberg jar wheel needs < 3.13); set PYTHON=/path/to/python3.11"

stamp=.venv/.cryptolake-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x .venv/bin/python ]; then
  exit 0
fi
[ -x .venv/bin/python ] || { say "creating .venv with $PY"; "$PY" -m venv .venv; }
say "installing pinned Python packages into .venv (first time: a few minutes)"
log=.venv/pip-install.log
if ! { .venv/bin/python -m pip install --upgrade pip \
       && .venv/bin/python -m pip install -c constraints.txt -e . --config-settings editable_mode=compat; } >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  die "pip install failed (full log: $log). Check access to the package index, then re-run."
fi
.venv/bin/python -m pip check >/dev/null || die "pip check failed: run '.venv/bin/pip check' to see the conflict"
echo "$want" > "$stamp"
say "done"
