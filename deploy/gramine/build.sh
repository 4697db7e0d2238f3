#!/usr/bin/env bash
# Builds ehsm, renders the Gramine manifest, signs the enclave and prints the measurements to
# pin (MRENCLAVE, MRSIGNER). Run from anywhere; the outputs go to deploy/gramine/build/ (or
# --out). See docs/deploy-gramine.md.
#
#   deploy/gramine/build.sh [--key KEY.pem] [--data-dir HOST_DIR] [--config FILE] [--out DIR]
#                           [--max-threads N] [--worker-threads N] [--enclave-size SIZE]
#
# Then run it on the SGX host from the output directory: `gramine-sgx ehsm`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

key="${HOME}/.config/gramine/enclave-key.pem"
data_dir="/var/lib/ehsm"
config="$here/ehsm.toml"
out="$here/build"
max_threads=64
worker_threads=8
enclave_size=4G

usage() {
    sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

die() {
    echo "build.sh: $*" >&2
    exit 1
}

while (($#)); do
    case "$1" in
        --key) key="${2:?--key needs a file}"; shift 2 ;;
        --data-dir) data_dir="${2:?--data-dir needs a directory}"; shift 2 ;;
        --config) config="${2:?--config needs a file}"; shift 2 ;;
        --out) out="${2:?--out needs a directory}"; shift 2 ;;
        --max-threads) max_threads="${2:?--max-threads needs a number}"; shift 2 ;;
        --worker-threads) worker_threads="${2:?--worker-threads needs a number}"; shift 2 ;;
        --enclave-size) enclave_size="${2:?--enclave-size needs a size such as 4G}"; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; exit 2 ;;
    esac
done

# Fail before the (long) cargo build if Gramine is not installed.
for tool in gramine-manifest gramine-sgx-sign gramine-sgx-sigstruct-view; do
    command -v "$tool" >/dev/null 2>&1 ||
        die "$tool not found: install Gramine 1.9 or later (https://gramine.readthedocs.io), \
which provides gramine-manifest, gramine-sgx-sign and gramine-sgx-sigstruct-view"
done
[[ -f "$config" ]] || die "the config file $config does not exist"
[[ "$data_dir" = /* ]] || die "--data-dir must be an absolute host path (got $data_dir)"

if [[ ! -f "$key" ]]; then
    command -v gramine-sgx-gen-private-key >/dev/null 2>&1 ||
        die "no signing key at $key and gramine-sgx-gen-private-key not found"
    echo "build.sh: no signing key at $key: generating one (keep it: it is MRSIGNER)" >&2
    mkdir -p "$(dirname "$key")"
    gramine-sgx-gen-private-key "$key"
fi

echo "build.sh: cargo build --release -p ehsm" >&2
(cd "$repo" && cargo build --release --locked -p ehsm)
target_dir="$(cd "$repo" && cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
[[ -n "$target_dir" ]] || target_dir="$repo/target"
ehsm_bin="$target_dir/release/ehsm"
[[ -x "$ehsm_bin" ]] || die "the build did not produce $ehsm_bin"

# Gramine's runtime provides glibc; libgcc_s (Rust's unwinder) comes from the host's multiarch
# directory, as in Gramine's own Rust example.
arch_libdir="/lib/$(gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)"
[[ -f "$arch_libdir/libgcc_s.so.1" ]] || die "libgcc_s.so.1 not found in $arch_libdir"

mkdir -p "$out"
# The trusted files are measured by path and content: copy them next to the manifest, so that
# the signed enclave does not depend on the build tree afterwards.
install -m 0755 "$ehsm_bin" "$out/ehsm-bin"
install -m 0644 "$config" "$out/ehsm.toml"

gramine-manifest \
    -Darch_libdir="$arch_libdir" \
    -Dehsm_bin="$out/ehsm-bin" \
    -Dehsm_config="$out/ehsm.toml" \
    -Ddata_dir="$data_dir" \
    -Dmax_threads="$max_threads" \
    -Dworker_threads="$worker_threads" \
    -Denclave_size="$enclave_size" \
    "$here/ehsm.manifest.template" "$out/ehsm.manifest"

gramine-sgx-sign \
    --key "$key" \
    --manifest "$out/ehsm.manifest" \
    --output "$out/ehsm.manifest.sgx"

echo >&2
echo "build.sh: signed $out/ehsm.manifest.sgx ($out/ehsm.sig). Pin these in the policies of" >&2
echo "build.sh: the nodes that hand this one keys (docs/attestation.md):" >&2
gramine-sgx-sigstruct-view "$out/ehsm.sig"
echo >&2
echo "build.sh: run on the SGX host: cd $out && mkdir -p $data_dir && gramine-sgx ehsm" >&2
