#!/usr/bin/env bash
# Runs every test of ocni, installing what the tests need first. This is the README's test
# command, and what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the build and the tests need: protoc (the etcd-client crate compiles etcd's
# protocol at build time) and etcd (the end-to-end tests run a second time against a 3-member
# etcd cluster, and tests/tests/cluster.rs kills and restarts members). Installed here when
# missing and apt-get can.
packages=()
command -v protoc >/dev/null || packages+=(protobuf-compiler)
command -v etcd >/dev/null || packages+=(etcd-server)
command -v etcdctl >/dev/null || packages+=(etcd-client)
if [ ${#packages[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "installing ${packages[*]} (protoc for the etcd client, etcd for the tests against it)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${packages[@]}" >/dev/null ||
      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${packages[@]}" >/dev/null; }
  else
    echo "warning: ${packages[*]} not installed (Debian: apt-get install protobuf-compiler etcd-server etcd-client); the build needs protoc, the etcd tests need etcd" >&2
  fi
fi

# The end-to-end tests build the guest components in guests/ for wasm32-wasip2 (tests/build.rs).
if command -v rustup >/dev/null && ! rustup target list --installed | grep -x wasm32-wasip2 >/dev/null; then
  echo "installing the Rust target wasm32-wasip2 for the guest components" >&2
  rustup target add wasm32-wasip2
fi

# The JavaScript guests (guests/js) are built by the tests with ComponentizeJS, from npm, at the
# versions guests/js/package-lock.json pins; Node.js 18 or later must be on the PATH.
if [ ! -d guests/js/node_modules/@bytecodealliance/componentize-js ] ||
  [ guests/js/package-lock.json -nt guests/js/node_modules/.package-lock.json ]; then
  echo "installing the JavaScript guest toolchain (npm ci in guests/js)" >&2
  npm ci --prefix guests/js --no-audit --no-fund
fi

# The WebDAV example's end-to-end test (tests/tests/webdav.rs) runs its walkthrough against a real
# nginx (its dav module): Debian's nginx-light. Installed here when missing and apt-get can.
if ! command -v nginx >/dev/null; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "installing nginx (nginx-light) for the WebDAV example's test" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light >/dev/null ||
      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light >/dev/null; }
  else
    echo "warning: nginx is not installed (Debian: apt-get install nginx-light); the WebDAV example's test will fail" >&2
  fi
fi

# The Python guests (guests/python) are built by the tests with componentize-py, from PyPI, at
# the version and hashes guests/python/requirements.txt pins, in a virtual environment of their
# own (guests/python/.venv); Python 3.9 or later with the venv module must be on the PATH.
if [ ! -x guests/python/.venv/bin/componentize-py ] ||
  [ guests/python/requirements.txt -nt guests/python/.venv/installed ]; then
  echo "installing the Python guest toolchain (componentize-py in guests/python/.venv)" >&2
  rm -rf guests/python/.venv
  python3 -m venv guests/python/.venv
  guests/python/.venv/bin/pip install --quiet --disable-pip-version-check --require-hashes \
    -r guests/python/requirements.txt
  touch guests/python/.venv/installed
fi

log=$(mktemp)
etcd_dir=""
cleanup() {
  if [ -n "$etcd_dir" ]; then
    scripts/etcd-cluster.sh stop "$etcd_dir" || true
    rm -rf "$etcd_dir"
  fi
  rm -f "$log"
}
trap cleanup EXIT

cargo test --workspace --locked "$@" 2>&1 | tee -a "$log"

# The handler SDK and the first-party handlers have unit tests of their own, run natively.
host=$(rustc -vV | sed -n 's/^host: //p')
guest_target="${CARGO_TARGET_DIR:-$PWD/target}/guests"
(cd guests && CARGO_TARGET_DIR="$guest_target" cargo test --locked --target "$host" "$@") 2>&1 | tee -a "$log"

# The end-to-end tests again, against a 3-member etcd cluster on loopback (the harness reads
# OCNI_TEST_STORE; every test server keeps its data under a key prefix of its own; the few tests
# of redb specifics pin their server to redb). Not the tests that start etcd clusters of their
# own (cluster, etcd_nodes, etcd_store): they ran above.
if command -v etcd >/dev/null && command -v etcdctl >/dev/null; then
  etcd_dir=$(mktemp -d)
  # Transactions of up to 4096 operations (etcd reads ETCD_* variables as its flags; its default
  # is 128): some tests create a thousand entities in one request. ocni's 413 past the limit is
  # tested on its own (tests/tests/etcd_store.rs, on etcd's default).
  ETCD_MAX_TXN_OPS=4096 scripts/etcd-cluster.sh start "$etcd_dir" 3 >/dev/null
  echo "running the end-to-end tests against etcd ($(cat "$etcd_dir/url"))" >&2
  targets=()
  for f in tests/tests/*.rs; do
    name=$(basename "$f" .rs)
    case $name in cluster | etcd_nodes | etcd_store) ;; *) targets+=(--test "$name") ;; esac
  done
  OCNI_TEST_STORE="$(cat "$etcd_dir/url")" OCNI_TEST_MAX_TXN_OPS=4096 \
    cargo test -p ocni-tests --locked "${targets[@]}" "$@" 2>&1 | tee -a "$log"
else
  echo "warning: etcd is not installed; the end-to-end tests did not run against the etcd engine" >&2
fi

# One closing line for the whole run, every run above counted (each harness prints its own
# "test result" lines).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
