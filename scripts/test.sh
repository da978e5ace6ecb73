#!/usr/bin/env bash
# Runs every check of kaq: formatting, clippy and the whole test suite.
# Installs the open hardware tools the tests need (Verilator, Yosys, Icarus Verilog,
# nextpnr-ice40) from Debian packages when they are missing. Tests that need them fail rather
# than skip, because KAQ_REQUIRE_VERILATOR=1 is set here.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v verilator >/dev/null 2>&1 || missing+=(verilator)
command -v yosys >/dev/null 2>&1 || missing+=(yosys)
command -v iverilog >/dev/null 2>&1 || missing+=(iverilog)
command -v nextpnr-ice40 >/dev/null 2>&1 || missing+=(nextpnr-ice40)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]} with apt-get"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
fi

# The Kubernetes driver test (tests/deploy_cli.rs) parses the manifests with PyYAML.
if ! python3 -c 'import yaml' >/dev/null 2>&1; then
  echo "installing PyYAML with pip"
  python3 -m pip install --quiet pyyaml
fi

export KAQ_REQUIRE_VERILATOR=1
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace
