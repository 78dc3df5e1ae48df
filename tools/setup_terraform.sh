#!/usr/bin/env bash
# Make a Terraform-compatible CLI available for the static checks in tests/terraform.
# Idempotent: does nothing if `terraform` or `tofu` is already on PATH or in .local/bin.
# Otherwise builds OpenTofu from source through the Go module proxy into <repo>/.local/bin.
# (`go install ...@version` cannot be used: OpenTofu's go.mod has replace directives.)
set -euo pipefail

TOFU_VERSION="${TOFU_VERSION:-v1.10.10}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN_DIR="${REPO_ROOT}/.local/bin"

for tool in terraform tofu; do
  if command -v "${tool}" >/dev/null 2>&1; then
    echo "setup_terraform: using $(command -v "${tool}")"
    exit 0
  fi
  if [ -x "${BIN_DIR}/${tool}" ]; then
    echo "setup_terraform: using ${BIN_DIR}/${tool}"
    exit 0
  fi
done

if ! command -v go >/dev/null 2>&1; then
  echo "setup_terraform: neither terraform nor tofu found, and no Go toolchain to build OpenTofu." >&2
  echo "  Install Go (https://go.dev/dl/) or put terraform/tofu on PATH, then re-run this script." >&2
  exit 1
fi

echo "setup_terraform: building OpenTofu ${TOFU_VERSION} into ${BIN_DIR} (takes a few minutes)"
src_dir="$(go mod download -json "github.com/opentofu/opentofu@${TOFU_VERSION}" |
  sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
if [ -z "${src_dir}" ] || [ ! -d "${src_dir}" ]; then
  echo "setup_terraform: could not download github.com/opentofu/opentofu@${TOFU_VERSION} from the Go module proxy." >&2
  echo "  Check GOPROXY/network, or set TOFU_VERSION to a version listed by:" >&2
  echo "  go list -m -versions github.com/opentofu/opentofu" >&2
  exit 1
fi

build_dir="$(mktemp -d)"
trap 'rm -rf "${build_dir}"' EXIT
# The module cache is read-only; build from a writable copy so its go.mod (with its
# replace directives) is the main module.
cp -R "${src_dir}/." "${build_dir}/"
chmod -R u+w "${build_dir}"
mkdir -p "${BIN_DIR}"
if ! (cd "${build_dir}" && CGO_ENABLED=0 go build -trimpath -o "${BIN_DIR}/tofu" ./cmd/tofu); then
  echo "setup_terraform: building OpenTofu ${TOFU_VERSION} failed (see the Go errors above)." >&2
  echo "  Install terraform or tofu by other means and put it on PATH." >&2
  exit 1
fi
"${BIN_DIR}/tofu" version
