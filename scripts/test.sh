#!/usr/bin/env bash
# README command 2: runs every test. Installs what is missing, then:
#   1. Rust unit and integration tests (cargo test --features ssr), against real Redis and
#      PostgreSQL servers started for the run, and from their results the README's
#      conformance table;
#   2. the release build (cargo leptos build --release), bundled as it is deployed: the server
#      binary with its site/ directory next to it;
#   3. the Playwright suite in end2end/, in Debian's Chromium, against that binary started on
#      its own and the bundled OpenID provider.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

say() { printf '\n\033[1;34m==>\033[0m %s\n' "$*" >&2; }
started=$(date +%s)
step() { say "$1 (after $(( $(date +%s) - started ))s)"; }

step "installing what is missing"
scripts/setup.sh test

step "starting Redis and PostgreSQL for the tests"
source scripts/test-servers.sh
start_test_servers

step "Rust unit and integration tests"
rust_log=$(mktemp)
trap 'rm -f "$rust_log"; stop_test_servers' EXIT
cargo test --features ssr 2>&1 | tee "$rust_log"
rust_passed=$(awk '/^test result:/ { for (i = 1; i <= NF; i++) if ($i == "passed;") s += $(i-1) } END { print s + 0 }' "$rust_log")
# The README's conformance table comes from this run.
scripts/conformance-table.sh "$rust_log"

step "release build"
scripts/release-bundle.sh target/e2e

step "Playwright end-to-end tests in Chromium"
e2e_log=$(mktemp)
trap 'rm -f "$rust_log" "$e2e_log"; stop_test_servers' EXIT
(cd end2end && npx playwright test) 2>&1 | tee "$e2e_log"
e2e_passed=$(grep -Eo '^ *[0-9]+ passed' "$e2e_log" | tail -n 1 | tr -dc 0-9)

say "all tests passed in $(( $(date +%s) - started ))s: Rust ${rust_passed}, Playwright ${e2e_passed:-0}"
echo "$((rust_passed + ${e2e_passed:-0})) passed, 0 failed"
