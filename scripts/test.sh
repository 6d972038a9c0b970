#!/usr/bin/env bash
# Runs every test of the project: unit, property, request-level and CRD tests.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --locked --all-targets
