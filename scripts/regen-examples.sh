#!/usr/bin/env bash
# Rewrites the committed example design examples/pgd-qpsk-2x2: the IR from the committed
# quantized model (`kaq lower`) and the RTL from the IR (`kaq codegen --lanes 2`). Run it
# after any change to the lowering or the code generator, and commit the result;
# tests/examples_cli.rs fails until the committed files match what kaq generates.
#
# With --retrain it first retrains the f32 teacher and its 8-bit KAQ student from scratch
# (a few seconds), which changes every file.
set -euo pipefail
cd "$(dirname "$0")/.."

retrain=0
case "${1:-}" in
  "") ;;
  --retrain) retrain=1 ;;
  *) echo "usage: $0 [--retrain]" >&2; exit 2 ;;
esac

cargo build --release --quiet --bin kaq
kaq="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/release/kaq"
ex=examples/pgd-qpsk-2x2

if [ "$retrain" = 1 ]; then
  "$kaq" train --nt 2 --nr 2 --mod qpsk --layers 3 --samples 20000 --lr 0.01 \
    --threads 1 --out "$ex/teacher.json" --force
  "$kaq" train --quant kaq --bits 8 --teacher "$ex/teacher.json" --samples 20000 \
    --threads 1 --out "$ex/model.json" --force
fi
"$kaq" lower --model "$ex/model.json" --out "$ex/ir.json" --force
# Start from an empty directory so that files an earlier generator wrote, and this one no
# longer does, disappear.
rm -rf "$ex/rtl"
"$kaq" codegen --ir "$ex/ir.json" --out "$ex/rtl" --lanes 2
