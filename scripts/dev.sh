#!/usr/bin/env bash
# README command 1: runs the app for development. Installs what is missing, starts the bundled
# OpenID provider with its two issuers, Acme Corp and Globex (unless OIDC_ISSUER or
# OIDC_PROVIDERS points elsewhere), configures the app with both, and runs `cargo leptos watch`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
export PATH="$HOME/.cargo/bin:$PATH"
[ -f .env ] && set -a && . ./.env && set +a

provider_pid=
cleanup() { [ -n "$provider_pid" ] && kill "$provider_pid" 2>/dev/null || true; }
trap cleanup EXIT INT TERM

if [ -z "${OIDC_ISSUER:-}" ] && [ -z "${OIDC_PROVIDERS:-}" ]; then
  # Globex as a FAPI 2.0 provider (PAR, private_key_jwt, DPoP with nonces, PS256 ID tokens).
  PROVIDER_PROFILE=fapi2 node scripts/provider/provider.mjs &
  provider_pid=$!
  # Wait until both issuers listen; stop with a clear word if they cannot.
  for port in 4000 4001; do
    for _ in $(seq 50); do
      (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
      kill -0 "$provider_pid" 2>/dev/null || break
      sleep 0.2
    done
  done
  if ! kill -0 "$provider_pid" 2>/dev/null; then
    echo "error: the bundled OpenID provider did not start (are ports 4000 and 4001 in use?)" >&2
    exit 1
  fi
  export OIDC_PROVIDERS=acme,globex
  export OIDC_ACME_LABEL="Acme Corp" OIDC_ACME_ISSUER=http://127.0.0.1:4000 \
    OIDC_ACME_CLIENT_ID=leptos-oidc-demo OIDC_ACME_CLIENT_SECRET=leptos-oidc-demo-secret
  # Globex takes private_key_jwt (the app's development key, at /.well-known/jwks.json),
  # pushed authorization requests only, and DPoP-bound tokens only.
  export OIDC_GLOBEX_LABEL=Globex OIDC_GLOBEX_ISSUER=http://127.0.0.1:4001 \
    OIDC_GLOBEX_CLIENT_ID=leptos-oidc-globex OIDC_GLOBEX_CLIENT_AUTH=private_key_jwt \
    OIDC_GLOBEX_DPOP=true
  cat <<'BANNER'

  ┌──────────────────────────────────────────────────────────────────┐
  │  When the build below finishes, open  http://127.0.0.1:3000      │
  │                                                                  │
  │  The bundled provider has two issuers. Sign in as                │
  │    Acme Corp (http://127.0.0.1:4000):                            │
  │      alice / wonderland      or      bob / builder               │
  │    Globex (http://127.0.0.1:4001):                               │
  │      carol / chemistry       or      dave / diving               │
  └──────────────────────────────────────────────────────────────────┘

BANNER
else
  printf '\n  When the build below finishes, open http://127.0.0.1:3000 (providers: %s)\n\n' "${OIDC_PROVIDERS:-$OIDC_ISSUER}"
fi

cargo leptos watch
