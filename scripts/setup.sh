#!/usr/bin/env bash
# Installs what the app (`dev`), its tests (`test`), the benchmark (`bench`) or the benchmark
# with its peers (`peers`) need, skipping whatever is present.
# Safe to run again and again; the README's two commands run it for you.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-dev}

say() { printf '\033[1;34m==>\033[0m %s\n' "$*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

export PATH="$HOME/.cargo/bin:$PATH"

apt_updated=
apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return
  say "installing ${missing[*]} (Debian packages)"
  if [ -z "$apt_updated" ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

have cargo || { echo "Rust is needed first: https://rustup.rs" >&2; exit 1; }
have node && have npm || apt_install nodejs npm

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  say "adding the wasm32-unknown-unknown Rust target"
  rustup target add wasm32-unknown-unknown
fi

# cargo-leptos 0.3.10: 0.3.11 needs a newer rustc than 1.95.
if ! cargo leptos --version 2>/dev/null | grep -q ' 0\.3\.10$'; then
  say "installing cargo-leptos 0.3.10 (about 12 minutes, once)"
  cargo install cargo-leptos --version 0.3.10 --locked
fi

# wasm-bindgen-cli must be exactly the wasm-bindgen version in Cargo.lock. Not --locked: its
# lockfile names a crate release the registry no longer serves.
wbg=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
if ! wasm-bindgen --version 2>/dev/null | grep -q " $wbg\$"; then
  say "installing wasm-bindgen-cli $wbg (about 4 minutes, once)"
  cargo install wasm-bindgen-cli --version "$wbg"
fi

npm_ci() { # installs a package's node_modules from its lockfile when they are missing or stale
  local dir=$1
  if [ ! -f "$dir/node_modules/.package-lock.json" ] ||
     [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    say "installing npm packages in $dir"
    (cd "$dir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  fi
}
npm_ci scripts/provider

if [ "$mode" = test ] || [ "$mode" = bench ] || [ "$mode" = peers ]; then
  # Release builds run wasm-opt; npm's binaryen ships a working one.
  if ! have wasm-opt; then
    say "installing wasm-opt (npm binaryen)"
    npm install -g --no-audit --no-fund --loglevel=error binaryen@132
  fi
  if [ "$mode" = test ]; then
    # Playwright cannot download its browsers here: Debian's Chromium instead. The tests run
    # against real Redis and PostgreSQL servers, which scripts/test-servers.sh starts (it asks
    # python3 for free ports).
    apt_install chromium redis-server postgresql python3
    npm_ci end2end
  fi
fi

if [ "$mode" = bench ] || [ "$mode" = peers ]; then
  # The load tool, taskset (util-linux) to pin the app and the load to their cores, and the
  # session stores measured beside SQLite (started by scripts/test-servers.sh).
  apt_install wrk util-linux redis-server postgresql python3
fi
if [ "$mode" = peers ]; then
  # The peers: Apache with mod_auth_openidc, and Python for the Flask sample's virtualenv.
  apt_install apache2 libapache2-mod-auth-openidc python3-venv
fi
