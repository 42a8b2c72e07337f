#!/usr/bin/env bash
# Walk through the pyOCNI README HowTo (section 4) against a running ocni server.
#
# Usage: examples/seed/walkthrough.sh [BASE_URL]
#   BASE_URL defaults to http://127.0.0.1:8090
#
# Reads steps.tsv next to this script (TAB separated:
# id, method, path, body_file_or_-, expected_status, description), sends each
# request with curl, prints "-- id description", "method URL -> status" and the response
# body, and compares the status with the expected one. Exits 1 if any step failed.
set -euo pipefail

BASE_URL="${1:-http://127.0.0.1:8090}"
BASE_URL="${BASE_URL%/}"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
STEPS="$SCRIPT_DIR/steps.tsv"
MAX_LINES=20
ACCEPT='application/occi+json; dialect=pyocni'
CONTENT_TYPE='application/occi+json'

if ! command -v curl >/dev/null 2>&1; then
    echo "error: curl is required" >&2
    exit 2
fi
if [[ ! -r "$STEPS" ]]; then
    echo "error: cannot read $STEPS" >&2
    exit 2
fi

# step, check and summary (and $TMP_DIR, removed on exit).
source "$SCRIPT_DIR/../lib/steps.sh"

while IFS=$'\t' read -r id method path body expected description <&3 || [[ -n "${id:-}" ]]; do
    # skip blank lines and comments (the first line names the columns)
    [[ -z "${id//[[:space:]]/}" || "$id" == \#* ]] && continue

    args=()
    if [[ -n "$body" && "$body" != "-" ]]; then
        body_file="$SCRIPT_DIR/$body"
        if [[ ! -r "$body_file" ]]; then
            echo "-- $id $description"
            echo "    FAIL: body file $body not found"
            check "$id" 1
            continue
        fi
        args+=(-H "Content-Type: $CONTENT_TYPE" --data-binary "@$body_file")
    fi
    step "$id $description" "$expected" "$method" "$path" "${args[@]}"
done 3<"$STEPS"

summary
