#!/usr/bin/env bash
# Drives a real WebDAV server through ocni: starts nginx with its dav module on loopback,
# uploads the `webdav` handler (guests/handlers/webdav), defines the folder kind bound to it, and
# makes, fills and removes folders through OCCI, checking on the WebDAV server itself after
# every step that each one really happened (see README.md next to this file).
#
# Usage: examples/webdav/walkthrough.sh [BASE_URL]
#   BASE_URL defaults to http://127.0.0.1:8090: an ocni server started with
#   `--handler-allow-outbound 'http://127.0.0.1:*' --handler-allow-private` (handlers may
#   reach loopback only when the operator says so), on a fresh data directory.
# Environment:
#   DAV_PORT  the port nginx listens on (default 8091)
#   WASM      a built webdav component to upload; without it the script builds it with cargo
#
# Prints every step's status and body, compares the status with the expected one, and ends with
# "N passed, M failed"; exits 1 if a step failed, 2 if something it needs is missing.
set -euo pipefail

BASE_URL="${1:-http://127.0.0.1:8090}"
BASE_URL="${BASE_URL%/}"
DAV_PORT="${DAV_PORT:-8091}"
DAV="http://127.0.0.1:$DAV_PORT"

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GUESTS="$SCRIPT_DIR/../../guests"
KIND_JSON="$SCRIPT_DIR/folder-kind.json"
JSON='application/occi+json'
FOLDER='http://example.com/occi/dav#folder'

for tool in curl nginx; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "error: $tool is required (Debian: apt-get install curl nginx-light)" >&2
        exit 2
    fi
done

# step, request, check and summary (and $TMP_DIR, removed on exit).
source "$SCRIPT_DIR/../lib/steps.sh"

# --- 1. The handler -------------------------------------------------------------------------

if [[ -z "${WASM:-}" ]]; then
    echo "== build the handler"
    if ! rustup target list --installed | grep -qx wasm32-wasip2; then
        rustup target add wasm32-wasip2
    fi
    target_dir="${CARGO_TARGET_DIR:-$GUESTS/target}"
    (cd "$GUESTS" && CARGO_TARGET_DIR="$target_dir" cargo build --release --locked --target wasm32-wasip2 -p webdav)
    WASM="$target_dir/wasm32-wasip2/release/webdav.wasm"
fi
if [[ ! -r "$WASM" ]]; then
    echo "error: no component at $WASM" >&2
    exit 2
fi
echo "handler: $WASM ($(wc -c <"$WASM") bytes)"

# --- 2. The WebDAV server -------------------------------------------------------------------

echo "== start nginx on $DAV"
NGINX="$TMP_DIR/nginx"
ROOT="$TMP_DIR/dav"
mkdir -p "$NGINX" "$ROOT"
sed -e "s|@USER@|$(id -un)|g" -e "s|@GROUP@|$(id -gn)|g" -e "s|@PREFIX@|$NGINX|g" \
    -e "s|@PORT@|$DAV_PORT|g" -e "s|@ROOT@|$ROOT|g" "$SCRIPT_DIR/nginx.conf" >"$NGINX/nginx.conf"
nginx -p "$NGINX" -e "$NGINX/error.log" -c "$NGINX/nginx.conf" &
NGINX_PID=$!
trap 'kill "$NGINX_PID" 2>/dev/null; wait "$NGINX_PID" 2>/dev/null; rm -rf "$TMP_DIR"' EXIT
for _ in $(seq 50); do
    curl -s -o /dev/null "$DAV/" && break
    if ! kill -0 "$NGINX_PID" 2>/dev/null; then
        echo "error: nginx did not start:" >&2
        cat "$NGINX/error.log" >&2
        exit 2
    fi
    sleep 0.1
done
echo

# folder NAME [SERVER]: the body of a folder create in OCCI 1.2 JSON.
folder() {
    printf '{"kind": "%s", "attributes": {"dav.folder.name": "%s", "dav.folder.server": "%s"}}' \
        "$FOLDER" "$1" "${2:-$DAV}"
}

# put NAME CONTENT: the body of the put action.
put() {
    printf '{"action": "http://example.com/occi/dav/folder/action#put", "attributes": {"dav.file.name": "%s", "dav.file.content": "%s"}}' \
        "$1" "$2"
}

# --- 3. Upload and bind ---------------------------------------------------------------------

echo "== talk to $BASE_URL"
echo

step "upload the component as handler \"dav\", allowed to reach $DAV" 201 PUT "/-/handlers/dav?allow-outbound=$DAV" \
    -H 'Content-Type: application/wasm' --data-binary "@$WASM"

step "define the folder kind and its put action, bound to \"dav\"" 200 POST /-/ \
    -H "Content-Type: $JSON" --data-binary "@$KIND_JSON"

# --- 4. Folders -----------------------------------------------------------------------------

request "nginx has no folder \"reports\" yet" 404 GET "$DAV/reports/"

step "create the folder \"reports\": the handler sends MKCOL" 201 POST /folders/ \
    -H "Content-Type: $JSON" --data-binary "$(folder reports)"
reports="${LOCATION:-/folders/missing}"

step "read it: the handler set dav.folder.url" 200 GET "$reports"

request "nginx now lists it" 200 GET "$DAV/reports/"

step "a second folder \"reports\": the collection exists and is not ours (409)" 409 POST /folders/ \
    -H "Content-Type: $JSON" --data-binary "$(folder reports)"

step "a name with a slash is refused before any request (400)" 400 POST /folders/ \
    -H "Content-Type: $JSON" --data-binary "$(folder 'a/b')"

step "a server the handler may not reach is refused by the host (400, denied)" 400 POST /folders/ \
    -H "Content-Type: $JSON" --data-binary "$(folder elsewhere http://127.0.0.1:9)"

# --- 5. The put action ----------------------------------------------------------------------

step "put hello.txt into it: the handler sends PUT" 200 POST "$reports?action=put" \
    -H "Content-Type: $JSON" --data-binary "$(put hello.txt 'Hello, WebDAV')"

request "nginx serves the file" 200 GET "$DAV/reports/hello.txt"
if [[ "$(cat "$BODY")" == "Hello, WebDAV" ]]; then check "the file holds what was put" 0; else
    echo "    FAIL: the file holds $(cat "$BODY")"
    check "the file holds what was put" 1
fi

step "dav.folder.files counts it" 200 GET "$reports"
if grep -q '"dav.folder.files": *1' "$BODY"; then check "one file counted" 0; else
    echo "    FAIL: dav.folder.files is not 1"
    check "one file counted" 1
fi

# --- 6. Delete ------------------------------------------------------------------------------

step "delete the folder: the handler sends DELETE" 200 DELETE "$reports"

request "nginx no longer has it" 404 GET "$DAV/reports/"

step "the entity is gone too" 404 GET "$reports"

# --- summary --------------------------------------------------------------------------------

summary
