# Shared by the example walkthroughs (sourced, not run): numbered HTTP steps with curl, each
# checked against an expected status, and a closing "N passed, M failed" line.
#
# The sourcing script sets BASE_URL (no trailing slash) and may set ACCEPT (default
# application/occi+json) and MAX_LINES (default 25) first. Sourcing makes a temporary folder,
# $TMP_DIR, removed on exit.

ACCEPT="${ACCEPT:-application/occi+json}"
MAX_LINES="${MAX_LINES:-25}"

TMP_DIR="$(mktemp -d)"
trap 'rm -rf "$TMP_DIR"' EXIT
BODY="$TMP_DIR/body"
HEADERS="$TMP_DIR/headers"
ERR="$TMP_DIR/err"

passed=0
failed=0
failed_steps=()
LOCATION=""

# Prints the last response body indented, pretty-printed when it is JSON and python3 is there.
print_body() {
    local pretty="$TMP_DIR/pretty" total
    if [[ ! -s "$BODY" ]]; then
        echo "    (empty body)"
        return
    fi
    if ! { command -v python3 >/dev/null 2>&1 && python3 -m json.tool "$BODY" >"$pretty" 2>/dev/null; }; then
        cp "$BODY" "$pretty"
        [[ -n "$(tail -c 1 "$pretty")" ]] && echo >>"$pretty"
    fi
    total="$(wc -l <"$pretty")"
    head -n "$MAX_LINES" "$pretty" | sed 's/^/    /'
    if ((total > MAX_LINES)); then
        echo "    ... ($((total - MAX_LINES)) more lines)"
    fi
}

# check NAME OK: counts a pass when OK is 0, a failure otherwise.
check() {
    if [[ "$2" == 0 ]]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failed_steps+=("$1")
    fi
}

# request NAME EXPECTED_STATUS METHOD URL [curl arguments...]
# Sends the request to an absolute URL, prints status and body, counts a pass or a failure.
# Keeps the response's Location header (as a path when it is under BASE_URL) in $LOCATION.
request() {
    local name="$1" expected="$2" method="$3" url="$4" status
    shift 4
    : >"$BODY"
    : >"$HEADERS"
    status="$(curl -sS -g -o "$BODY" -D "$HEADERS" -w '%{http_code}' -X "$method" \
        -H "Accept: $ACCEPT" "$@" "$url" 2>"$ERR")" || status="${status:-000}"
    LOCATION="$(sed -n 's/^[Ll]ocation: *//p' "$HEADERS" | tr -d '\r' | head -n 1)"
    LOCATION="${LOCATION#"$BASE_URL"}"

    echo "-- $name"
    echo "   $method $url -> $status"
    if [[ "$status" == "000" ]]; then
        sed 's/^/    /' "$ERR"
    else
        print_body
    fi
    if [[ "$status" == "$expected" ]]; then
        check "$name" 0
    else
        echo "    FAIL: expected $expected, got $status"
        check "$name" 1
    fi
    echo
}

# step NAME EXPECTED_STATUS METHOD PATH [curl arguments...]: a request to the ocni server.
step() {
    local name="$1" expected="$2" method="$3" path="$4"
    shift 4
    request "$name" "$expected" "$method" "$BASE_URL$path" "$@"
}

# summary: prints the failed steps and "N passed, M failed"; returns 1 when a step failed.
summary() {
    if ((failed > 0)); then
        echo "failed steps:"
        printf '  %s\n' "${failed_steps[@]}"
    fi
    echo "$passed passed, $failed failed"
    ((failed == 0))
}
