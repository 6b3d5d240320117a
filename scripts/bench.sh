#!/usr/bin/env bash
# The benchmark: builds the release app, then measures it with wrk and full sign-ins through
# the bundled provider, the app pinned to core 0 and everything else to core 1. Prints a table
# and writes it into README.md. Installs what is missing first (wrk among it).
#
#   scripts/bench.sh          this app
#   scripts/bench.sh peers    this app, then the same scenarios against its peers (the Flask
#                             sample, axum-oidc, Apache with mod_auth_openidc), side by side
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
mode=${1:-}
if [ "$mode" = peers ]; then
  scripts/setup.sh peers
  scripts/bench/peers/build.sh
  export BENCH_PEERS=1
else
  scripts/setup.sh bench
fi
scripts/release-bundle.sh target/bench
# Throwaway Redis and PostgreSQL servers, for the signed-in page with sessions in each.
source scripts/test-servers.sh
start_test_servers
node scripts/bench/bench.mjs target/bench
