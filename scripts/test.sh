#!/usr/bin/env bash
# Runs every test of ocni, installing what the tests need first. This is the README's test
# command, and what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."

# The OCCI JSON schema test runs the schema validator with python3 + jsonschema (>= 4.18).
if ! python3 -c 'import jsonschema, referencing, jsonschema_specifications' 2>/dev/null; then
  echo "installing python jsonschema for the OCCI JSON schema test" >&2
  python3 -m pip install --quiet 'jsonschema>=4.18' || python3 -m pip install --quiet --user 'jsonschema>=4.18'
fi

cargo test --workspace --locked "$@"
