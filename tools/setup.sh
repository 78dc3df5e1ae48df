#!/usr/bin/env bash
# `make setup`: everything the project needs, idempotently, on a fresh machine.
#   .venv          Beam 2.77 + validator + CLI + API   (requirements/main.lock)
#   .venv-flink    apache-flink 2.3 (pins apache-beam<=2.61, hence its own venv)
#   .venv-checkov  checkov for the Terraform tests (its pins clash with Beam's)
#   .venv-bq       bqemulator, the BigQuery emulator (it pins sqlglot 30; Ibis 12 needs < 28)
#   .local/uv      uv, the installer of the four venvs (requirements/uv.lock)
#   .local/jars    Kafka broker and Flink Kafka connector jars, by Maven from tools/pom.xml
#   .local/jars-kappa  the Kappa arm's Flink 1.19 cluster and Beam job server, by Maven from
#                  tools/kappa-flink/
#   .local/bin     the Pub/Sub emulator (Go), fake-gcs-server (Go, the Cloud Storage emulator),
#                  Prism (Go, Beam's portable local runner, for the portability tests),
#                  and OpenTofu when no terraform/tofu is on PATH
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
PYTHON="${PYTHON:-python3.11}"

need() {  # need COMMAND WHAT-TO-INSTALL
  if ! command -v "$1" >/dev/null 2>&1; then
    echo "setup: '$1' not found: install $2, then run 'make setup' again" >&2
    exit 1
  fi
}
need "$PYTHON" "Python 3.11 (e.g. apt-get install python3.11 python3.11-venv, or pyenv install 3.11)"
need java "Java 17 (e.g. apt-get install openjdk-17-jdk-headless)"
need mvn "Maven (e.g. apt-get install maven)"
need go "Go 1.24 or newer (https://go.dev/doc/install, or apt-get install golang)"
java_major="$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)"
if [[ -z "$java_major" || "$java_major" -lt 17 ]]; then
  echo "setup: Java 17 or newer is needed (found '${java_major:-unknown}'): install openjdk-17-jdk-headless" >&2
  exit 1
fi

uv_bootstrap() {  # the pinned uv (requirements/uv.lock), installed once by pip into its own venv
  local want; want="$(cat requirements/uv.lock)"
  if [[ -x .local/uv/bin/uv && "$(cat .local/uv/.lock 2>/dev/null)" == "$want" ]]; then
    return 0
  fi
  rm -rf .local/uv
  "$PYTHON" -m venv .local/uv
  .local/uv/bin/python -m pip install -q -r requirements/uv.lock
  echo "$want" > .local/uv/.lock
}

venv() {  # venv DIR LOCKFILE EDITABLE(yes|no)
  local dir="$1" lock="$2" editable="$3" stamp="$1/.kappa-lock.sha256"
  local want; want="$(cat "$lock" pyproject.toml requirements/uv.lock | sha256sum | cut -d' ' -f1)"
  if [[ -x "$dir/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    return 0
  fi
  echo "setup: installing $dir from $lock ..."
  [[ -x "$dir/bin/python" ]] || "$PYTHON" -m venv "$dir"
  # --compile-bytecode: as pip does; with PYTHONDONTWRITEBYTECODE set, nothing else would
  # write the .pyc files, and every process would compile Beam and its peers from source.
  .local/uv/bin/uv pip install -q --compile-bytecode --python "$dir/bin/python" -r "$lock"
  if [[ "$editable" == yes ]]; then
    .local/uv/bin/uv pip install -q --python "$dir/bin/python" --no-deps -e .
  fi
  echo "$want" > "$stamp"
}

fake_gcs() {  # the Cloud Storage emulator, built from the Go module proxy
  local version=v1.56.1  # v1.56 honours if_generation_match on uploads (the cutover state's CAS)
  local stamp=.local/bin/.fake-gcs-server.version
  if [[ ! -x .local/bin/fake-gcs-server || "$(cat "$stamp" 2>/dev/null)" != "$version" ]]; then
    echo "setup: building fake-gcs-server $version from the Go module proxy (minutes the first time) ..."
    mkdir -p .local/bin
    GOBIN="$root/.local/bin" go install "github.com/fsouza/fake-gcs-server@$version"
    echo "$version" > "$stamp"
  fi
}

prism() {  # Beam's Prism runner, built from the Go module proxy at the Python SDK's version
  # Pinned to apache-beam in requirements/main.lock: a Prism of another release may speak
  # another Fn API (tests/kappa/test_portability.py fails loudly when the two drift apart).
  local version=v2.77.0
  local stamp=.local/bin/.prism.version
  if [[ ! -x .local/bin/prism || "$(cat "$stamp" 2>/dev/null)" != "$version" ]]; then
    echo "setup: building Prism $version from the Go module proxy (a minute or two the first time) ..."
    mkdir -p .local/bin
    GOBIN="$root/.local/bin" go install "github.com/apache/beam/sdks/v2/go/cmd/prism@$version"
    echo "$version" > "$stamp"
  fi
}

jars() {  # the Kafka broker and Flink connector jars
  local stamp=.local/jars/.pom.sha256 want
  want="$(sha256sum tools/pom.xml | cut -d' ' -f1)"
  if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    echo "setup: fetching Kafka and Flink connector jars with Maven ..."
    rm -rf .local/jars
    mvn -q -B -f tools/pom.xml package
    echo "$want" > "$stamp"
  fi
}

kappa_flink_jars() {  # the Kappa arm on Flink: cluster + job server
  local stamp=.local/jars-kappa/.pom.sha256 want
  want="$(cat tools/kappa-flink/pom.xml tools/kappa-flink/*/pom.xml | sha256sum | cut -d' ' -f1)"
  if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    echo "setup: fetching the Kappa arm's Flink and Beam job server jars with Maven ..."
    rm -rf .local/jars-kappa
    mvn -q -B -f tools/kappa-flink/pom.xml package
    echo "$want" > "$stamp"
  fi
}

go_tests() {  # Argo Rollouts' and Flagger's clients, built once for the tests (tests/argo, tests/flagger)
  # Their module graphs pull Kubernetes and cloud SDKs: minutes cold, seconds from Go's own
  # caches (the user's module and build caches, shared by every checkout on the machine).
  local want; want="$(cat tests/argo/go.sum tests/flagger/go.sum | sha256sum | cut -d' ' -f1)"
  local stamp=.local/go-tests.sha256
  [[ "$(cat "$stamp" 2>/dev/null)" == "$want" ]] && return 0
  echo "setup: building the Argo Rollouts and Flagger test clients (minutes the first time) ..."
  local module
  for module in tests/argo tests/flagger; do
    (cd "$module" && GOFLAGS="-modcacherw -mod=readonly" GOTOOLCHAIN=local go test -c -o /dev/null .)
  done
  mkdir -p .local && echo "$want" > "$stamp"
}

uv_bootstrap
export UV_PYTHON_DOWNLOADS=never UV_LINK_MODE=copy  # the machine's Python; files owned by each venv

# The steps are independent: run them side by side, then fail if any failed.
steps=()
step() { "$@" & steps+=("$!:$*"); }
step venv .venv requirements/main.lock yes
step venv .venv-flink requirements/flink.lock yes
step venv .venv-checkov requirements/checkov.lock no
step venv .venv-bq requirements/bqemulator.lock no
step fake_gcs
step prism
step jars
step kappa_flink_jars
step tools/build_emulator.sh
step go_tests
failed=0
for entry in "${steps[@]}"; do
  if ! wait "${entry%%:*}"; then
    echo "setup: '${entry#*:}' failed (its output is above)" >&2
    failed=1
  fi
done
((failed == 0)) || exit 1

tools/setup_terraform.sh
echo "setup: ready"
