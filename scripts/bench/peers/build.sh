#!/usr/bin/env bash
# Builds the benchmark's peers into target/peers (skipping what is built): the Flask peer's
# virtualenv, and the axum-oidc peer (a release build of its own, from its lockfile). Apache and
# mod_auth_openidc are Debian's (scripts/setup.sh peers installs them).
set -euo pipefail
cd "$(dirname "$0")/../../.."
out=target/peers
mkdir -p "$out"
req=scripts/bench/peers/flask/requirements.txt
if [ ! -x "$out/venv/bin/gunicorn" ] || [ "$req" -nt "$out/venv/.installed" ]; then
  printf '\033[1;34m==>\033[0m %s\n' "installing the Flask peer's packages (PyPI) in $out/venv" >&2
  python3 -m venv "$out/venv"
  "$out/venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  touch "$out/venv/.installed"
fi
printf '\033[1;34m==>\033[0m %s\n' "building the axum-oidc peer (a few minutes, once)" >&2
CARGO_TARGET_DIR="$out/axum-oidc" cargo build --release --locked --quiet \
  --manifest-path scripts/bench/peers/axum-oidc/Cargo.toml
