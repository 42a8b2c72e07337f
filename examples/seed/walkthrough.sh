#!/usr/bin/env bash
# Walk through the pyOCNI README HowTo (section 4) against a running ocni server.
#
# Usage: examples/seed/walkthrough.sh [BASE_URL]
#   BASE_URL defaults to http://127.0.0.1:8090
#
# Reads steps.tsv next to this script (TAB separated:
# id, method, path, body_file_or_-, expected_status, description), sends each
# request with curl, prints "id method path -> status" and the response body,
# and compares the status with the expected one. Exits 1 if any step failed.
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

TMP_DIR="$(mktemp -d)"
trap 'rm -rf "$TMP_DIR"' EXIT
BODY_OUT="$TMP_DIR/body"
ERR_OUT="$TMP_DIR/err"

# Print the response body indented, pretty-printed when it is JSON and
# python3 is available, truncated to MAX_LINES lines.
print_body() {
    local file="$1" pretty="$TMP_DIR/pretty" total
    if [[ ! -s "$file" ]]; then
        echo "    (empty body)"
        return
    fi
    if command -v python3 >/dev/null 2>&1 \
        && python3 -m json.tool "$file" >"$pretty" 2>/dev/null; then
        :
    else
        cp "$file" "$pretty"
        # make sure the last line is terminated
        [[ -n "$(tail -c 1 "$pretty")" ]] && echo >>"$pretty"
    fi
    total="$(wc -l <"$pretty")"
    head -n "$MAX_LINES" "$pretty" | sed 's/^/    /'
    if (( total > MAX_LINES )); then
        echo "    ... ($((total - MAX_LINES)) more lines)"
    fi
}

passed=0
failed=0
failed_ids=()

while IFS=$'\t' read -r id method path body expected _description <&3 || [[ -n "${id:-}" ]]; do
    # skip blank lines and comments (the first line names the columns)
    [[ -z "${id//[[:space:]]/}" || "$id" == \#* ]] && continue

    args=(-sS -g -o "$BODY_OUT" -w '%{http_code}' -X "$method" -H "Accept: $ACCEPT")
    if [[ -n "$body" && "$body" != "-" ]]; then
        body_file="$SCRIPT_DIR/$body"
        if [[ ! -r "$body_file" ]]; then
            echo "$id $method $path -> (not sent)"
            echo "    FAIL: body file $body not found"
            failed=$((failed + 1))
            failed_ids+=("$id")
            continue
        fi
        args+=(-H "Content-Type: $CONTENT_TYPE" --data-binary "@$body_file")
    fi

    : >"$BODY_OUT"
    if status="$(curl "${args[@]}" "$BASE_URL$path" 2>"$ERR_OUT")"; then
        :
    else
        status="${status:-000}"
    fi

    echo "$id $method $path -> $status"
    if [[ "$status" == "000" ]]; then
        sed 's/^/    /' "$ERR_OUT"
    else
        print_body "$BODY_OUT"
    fi

    if [[ "$status" == "$expected" ]]; then
        passed=$((passed + 1))
    else
        echo "    FAIL: expected $expected, got $status"
        failed=$((failed + 1))
        failed_ids+=("$id")
    fi
    echo
done 3<"$STEPS"

if (( failed > 0 )); then
    echo "failed steps: ${failed_ids[*]}"
fi
echo "$passed passed, $failed failed"
if (( failed > 0 )); then
    exit 1
fi
