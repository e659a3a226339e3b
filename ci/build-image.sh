#!/usr/bin/env bash
# Build one device's NixOS sd-image, write its age key in, compress it.
#
#   ci/build-image.sh DEVICE [OUT_DIR]
#
# Prints the artifact's path (OUT_DIR/DEVICE.img.zst, default out/) on
# stdout, and sets `artifact` in $GITHUB_OUTPUT when run in Actions.
#
# Environment:
#   VAULT_ADDR                       the Vault (or OpenBao) server
#   VAULT_ROLE_ID + VAULT_SECRET_ID  AppRole login (rumor logs in itself), or
#   VAULT_TOKEN                      a token
#   RUMOR                            the rumor binary (default: rumor on PATH)
#   LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg
#                                    on runners without KVM
#
# The injected image holds a private key, so: no `set -x`, a private umask,
# the uncompressed image only in a temp dir removed on exit, no cache step
# anywhere near it, and only the final archive leaves the temp dir.
set -euo pipefail
umask 077

die() {
  echo "build-image: $*" >&2
  exit 1
}

device="${1:-}"
out_dir="${2:-out}"
[[ "$device" =~ ^[a-z0-9][a-z0-9-]*$ ]] || die "usage: ci/build-image.sh DEVICE [OUT_DIR] (DEVICE is a devices/<id>.toml id)"
[ -f "devices/$device.toml" ] || die "devices/$device.toml not found; run from the repository root"
[ -n "${VAULT_ADDR:-}" ] || die "VAULT_ADDR is not set"
if [ -z "${VAULT_TOKEN:-}" ] && { [ -z "${VAULT_ROLE_ID:-}" ] || [ -z "${VAULT_SECRET_ID:-}" ]; }; then
  die "set VAULT_ROLE_ID and VAULT_SECRET_ID (AppRole), or VAULT_TOKEN"
fi
rumor="${RUMOR:-rumor}"
command -v "$rumor" >/dev/null || die "rumor not found; build it (nix build .#rumor) and set RUMOR"
command -v guestfish >/dev/null || die "guestfish is not installed; apt-get install libguestfs-tools"
command -v zstd >/dev/null || die "zstd is not installed"

work="$(mktemp -d "${RUNNER_TEMP:-${TMPDIR:-/tmp}}/rumor-image.XXXXXXXX")"
cleanup() { rm -rf -- "$work"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "build-image: building the sd-image of $device" >&2
store="$(nix build --no-link --print-out-paths ".#nixosConfigurations.$device.config.system.build.sdImage")"
source_image="$(find "$store/sd-image" -maxdepth 1 -type f \( -name '*.img' -o -name '*.img.zst' \) | head -n 1)"
[ -n "$source_image" ] || die "no image under $store/sd-image"

# A private, writable copy: the store path is read-only and shared.
image="$work/$device.img"
case "$source_image" in
  *.zst) zstd -q -d -o "$image" "$source_image" ;;
  *) cp --no-preserve=mode,ownership "$source_image" "$image" ;;
esac
chmod 600 "$image"

echo "build-image: writing the key of $device into the image" >&2
"$rumor" inject "$device" "$image"

mkdir -p "$out_dir"
artifact="$out_dir/$device.img.zst"
zstd -q -T0 -10 -o "$work/$device.img.zst" "$image"
rm -f -- "$image"
mv -f -- "$work/$device.img.zst" "$artifact"
chmod 600 "$artifact"

if [ -n "${GITHUB_OUTPUT:-}" ]; then
  echo "artifact=$artifact" >>"$GITHUB_OUTPUT"
fi
echo "$artifact"
