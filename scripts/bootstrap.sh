#!/usr/bin/env bash
# Creates or refreshes the project environment (.venv) from uv.lock.
# Idempotent: a second run with nothing changed takes about a second.
# Sourced by scripts/demo.sh and scripts/test.sh; safe to run on its own.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
uv_version="0.13.8"
tools="$root/.tools"

find_python() {
  for candidate in python3.11 python3 python; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  echo "error: Python 3.11 not found on PATH (va-actors is set up with Python 3.11)" >&2
  return 1
}

python_bin="$(find_python)"
if [ ! -x "$tools/bin/uv" ] || [[ "$("$tools/bin/uv" --version 2>/dev/null)" != "uv $uv_version"* ]]; then
  echo "bootstrap: installing uv $uv_version into .tools/ (first run only)" >&2
  "$python_bin" -m venv "$tools"
  "$tools/bin/python" -m pip install --quiet "uv==$uv_version"
fi

# Debian packages the tests need, installed where missing (as root, with apt-get).
# apt_package PACKAGE WHAT FOUND: FOUND (a shell test) says it is there already.
apt_package() {
  local package="$1" what="$2" found="$3"
  eval "$found" && return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: install Debian's $package ($what)" >&2
    return 0
  fi
  echo "bootstrap: installing Debian's $package ($what; first run only)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "$package" >/dev/null
}
# Chromium: the real browser the WebRTC edge's tests drive (Playwright never downloads one).
apt_package chromium "the browser tests" "[ -x /usr/bin/chromium ]"
# iproute2 (ip, tc): the network-namespace tests of remote workers (tests/remote).
apt_package iproute2 "the namespace tests" \
  "command -v ip >/dev/null 2>&1 && command -v tc >/dev/null 2>&1"
# PostgreSQL: a real server for the tests of the shared conversation store.
apt_package postgresql "the shared conversation store's tests" \
  "command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null"
export UV_PROJECT_ENVIRONMENT="$root/.venv"
"$tools/bin/uv" sync --quiet --project "$root" --locked --all-packages --python "$python_bin"
