#!/usr/bin/env bash
# Builds the Pub/Sub emulator (tools/pubsub-emulator) into .local/bin, against a copy of
# the pinned pstest module whose Seek keeps message bodies (see patch_pstest.py).
# Idempotent: does nothing when the binary is newer than its sources.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
src="$root/tools/pubsub-emulator"
out="$root/.local/bin/pubsub-emulator"
build="$root/.local/build"

if [[ -x "$out" && "$out" -nt "$src/main.go" && "$out" -nt "$src/go.mod" && "$out" -nt "$src/patch_pstest.py" ]]; then
  exit 0
fi
mkdir -p "$build/emulator" "$root/.local/bin"
cd "$src"
module_dir="$(go mod download -json cloud.google.com/go/pubsub/v2 | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
python3 "$src/patch_pstest.py" "$module_dir" "$build/pubsub-v2"
cp "$src/main.go" "$src/go.mod" "$src/go.sum" "$build/emulator/"
cd "$build/emulator"
go mod edit -replace cloud.google.com/go/pubsub/v2=../pubsub-v2
GOFLAGS=-mod=mod go build -o "$out" .
echo "built $out"
