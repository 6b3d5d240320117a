#!/usr/bin/env bash
# README command 1: runs the app for development. Installs what is missing, starts the bundled
# OpenID provider (unless OIDC_ISSUER points elsewhere), and runs `cargo leptos watch`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
export PATH="$HOME/.cargo/bin:$PATH"
[ -f .env ] && set -a && . ./.env && set +a

provider_pid=
cleanup() { [ -n "$provider_pid" ] && kill "$provider_pid" 2>/dev/null || true; }
trap cleanup EXIT INT TERM

if [ -z "${OIDC_ISSUER:-}" ]; then
  node scripts/provider/provider.mjs &
  provider_pid=$!
  # Wait until it listens; stop with a clear word if it cannot.
  for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/4000) 2>/dev/null && break
    kill -0 "$provider_pid" 2>/dev/null || break
    sleep 0.2
  done
  if ! kill -0 "$provider_pid" 2>/dev/null; then
    echo "error: the bundled OpenID provider did not start (is port 4000 in use?)" >&2
    exit 1
  fi
  cat <<'BANNER'

  ┌──────────────────────────────────────────────────────────────────┐
  │  When the build below finishes, open  http://127.0.0.1:3000      │
  │                                                                  │
  │  Sign in at the bundled provider (http://127.0.0.1:4000) as      │
  │    alice / wonderland      or      bob / builder                 │
  └──────────────────────────────────────────────────────────────────┘

BANNER
else
  printf '\n  When the build below finishes, open http://127.0.0.1:3000 (provider: %s)\n\n' "$OIDC_ISSUER"
fi

cargo leptos watch
