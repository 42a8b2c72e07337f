#!/usr/bin/env bash
# Builds the order handler next to this script, uploads it to a running ocni server, binds it
# to a new kind and drives a few orders through it (see README.md next to this file).
#
# Usage: examples/handler/walkthrough.sh [BASE_URL]
#   BASE_URL defaults to http://127.0.0.1:8090
#
# Run it against a fresh server (e.g. `ocni serve --data "$(mktemp -d)"`): it defines the kind
# http://example.com/occi/shop#order, which a second run finds already there (409).
# Prints every step's status and body, compares the status with the expected one, and ends
# with "N passed, M failed"; exits 1 if a step failed.
set -euo pipefail

BASE_URL="${1:-http://127.0.0.1:8090}"
BASE_URL="${BASE_URL%/}"

# Everything is found relative to this script, so it runs from any directory.
SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MANIFEST="$SCRIPT_DIR/Cargo.toml"
KIND_JSON="$SCRIPT_DIR/order-kind.json"
TARGET_DIR="${CARGO_TARGET_DIR:-$SCRIPT_DIR/target}"
WASM_GIVEN="${WASM:-}"
WASM="${WASM:-$TARGET_DIR/wasm32-wasip2/release/orders.wasm}"

KIND='http://example.com/occi/shop#order'
JSON='application/occi+json'

for tool in curl cargo rustup; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "error: $tool is required" >&2
        exit 2
    fi
done

# step, check and summary (and $TMP_DIR, removed on exit).
source "$SCRIPT_DIR/../lib/steps.sh"

# --- 1. Build the component -----------------------------------------------------------------

# WASM=path/to/orders.wasm uploads a component built elsewhere (orders.js, say) instead.
if [[ -n "${WASM_GIVEN:-}" ]]; then
    echo "== the handler: $WASM"
else
    echo "== build the handler"
    if ! rustup target list --installed | grep -qx wasm32-wasip2; then
        rustup target add wasm32-wasip2
    fi
    cargo build --release --target wasm32-wasip2 --manifest-path "$MANIFEST"
fi
if [[ ! -r "$WASM" ]]; then
    echo "error: the build did not produce $WASM" >&2
    exit 2
fi
echo "built $WASM ($(wc -c <"$WASM") bytes)"
echo

# --- helpers --------------------------------------------------------------------------------

# order ITEM QUANTITY: the body of a create in OCCI 1.2 JSON.
order() {
    printf '{"kind": "%s", "attributes": {"shop.order.item": "%s", "shop.order.quantity": %s}}' "$KIND" "$1" "$2"
}

# --- 2. Upload and bind ---------------------------------------------------------------------

echo "== talk to $BASE_URL"
echo

step "upload the component as handler \"orders\"" 201 PUT /-/handlers/orders \
    -H 'Content-Type: application/wasm' --data-binary "@$WASM"

step "define the kind and its actions, bound to \"orders\"" 200 POST /-/ \
    -H "Content-Type: $JSON" --data-binary "@$KIND_JSON"

step "the handler now lists the kind it is bound to" 200 GET /-/handlers/orders

# --- 3. Entities through the handler --------------------------------------------------------

step "create an order for 2 teapots" 201 POST /orders/ \
    -H "Content-Type: $JSON" --data-binary "$(order teapot 2)"
first="$LOCATION"

step "read it: on-create gave it shop.order.number, the default made it open" 200 GET "${first:-/orders/missing}"

step "validate refuses quantity 0 (400, the handler's message)" 400 POST /orders/ \
    -H "Content-Type: $JSON" --data-binary "$(order teapot 0)"

step "validate refuses quantity 101 on update too" 400 POST "${first:-/orders/missing}" \
    -H "Content-Type: $JSON" --data-binary '{"attributes": {"shop.order.quantity": 101}}'

# --- 4. Actions -----------------------------------------------------------------------------

step "ship it: open -> shipped" 200 POST "${first:-/orders/missing}?action=ship"

step "ship it again: no longer applicable, a conflict (409)" 409 POST "${first:-/orders/missing}?action=ship"

step "create a second order for 5 cups" 201 POST /orders/ \
    -H "Content-Type: $JSON" --data-binary "$(order cup 5)"
second="$LOCATION"

step "cancel it: open -> cancelled" 200 POST "${second:-/orders/missing}?action=cancel"

step "ship the cancelled order: a conflict (409)" 409 POST "${second:-/orders/missing}?action=ship"

step "the orders, numbered 1 and 2 (the refused create used up no number)" 200 GET /orders/

# --- summary --------------------------------------------------------------------------------

summary
