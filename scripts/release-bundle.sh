#!/usr/bin/env bash
# Builds the release app (cargo leptos build --release) and bundles it as it is deployed: the
# server binary with its site/ directory next to it, in $1.
set -euo pipefail
cd "$(dirname "$0")/.."
bundle=${1:?usage: scripts/release-bundle.sh DIR}
cargo leptos build --release
rm -rf "$bundle"
mkdir -p "$bundle"
cp target/release/leptos-oidc "$bundle/"
cp -r target/site "$bundle/site"
