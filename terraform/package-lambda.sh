#!/usr/bin/env bash
# Builds the Lambda package the Terraform deploys: the `runtime` binary as `bootstrap`, zipped at
# target/lambda/runtime/bootstrap.zip (the default of var.lambda_zip_path).
#
#   terraform/package-lambda.sh [arm64|x86_64]      # default arm64 (var.lambda_architecture)
#   FORECASTER_BUNDLE_DIR=models/lstm/web-server-01_cpu_usage terraform/package-lambda.sh
#       also packs an LSTM bundle (experiment lstm train) as forecaster/ for the predictor
#       function (FORECASTER_BUNDLE=/var/task/forecaster; deploy with forecast_model = "lstm").
#       Without it the predictor fits the statistical `auto` forecaster per server (the default).
#
# Uses cargo-lambda (`pip install cargo-lambda` or `cargo install cargo-lambda`; it cross-compiles
# with zig and links against the glibc of Lambda's provided.al2023). Without it, builds natively
# when the host architecture matches, and links statically with musl so no glibc version matters
# (`rustup target add <arch>-unknown-linux-musl`).
set -euo pipefail
arch="${1:-arm64}"
case "$arch" in
  arm64) triple_arch=aarch64 ;;
  x86_64) triple_arch=x86_64 ;;
  *) echo "package-lambda.sh: architecture must be arm64 or x86_64, not '$arch'" >&2; exit 2 ;;
esac
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="$root/target/lambda/runtime"
mkdir -p "$out"

if cargo lambda --help >/dev/null 2>&1; then
  flag="--arm64"; [ "$arch" = x86_64 ] && flag="--x86-64"
  cargo lambda build --release -p runtime --bin runtime "$flag" --output-format zip
  # cargo-lambda names the zip after the binary's folder: target/lambda/runtime/bootstrap.zip
elif [ "$(uname -m)" = "$triple_arch" ]; then
  target="$triple_arch-unknown-linux-musl"
  if ! rustup target list --installed 2>/dev/null | grep -qx "$target"; then
    echo "package-lambda.sh: needs cargo-lambda, or the $target target (rustup target add $target)" >&2
    exit 1
  fi
  cargo build --release -p runtime --bin runtime --target "$target"
  cp "target/$target/release/runtime" "$out/bootstrap"
  (cd "$out" && rm -f bootstrap.zip && zip -q -9 bootstrap.zip bootstrap)
else
  echo "package-lambda.sh: building for $arch on $(uname -m) needs cargo-lambda (pip install cargo-lambda)" >&2
  exit 1
fi

if [ -n "${FORECASTER_BUNDLE_DIR:-}" ]; then
  for f in forecaster.json weights.bpk; do
    [ -f "$FORECASTER_BUNDLE_DIR/$f" ] || { echo "package-lambda.sh: $FORECASTER_BUNDLE_DIR has no $f (experiment lstm train writes it)" >&2; exit 1; }
  done
  rm -rf "$out/forecaster" && mkdir -p "$out/forecaster"
  cp "$FORECASTER_BUNDLE_DIR/forecaster.json" "$FORECASTER_BUNDLE_DIR/weights.bpk" "$out/forecaster/"
  (cd "$out" && zip -q -9 bootstrap.zip forecaster/forecaster.json forecaster/weights.bpk)
fi

ls -l "$out/bootstrap.zip"
unzip -l "$out/bootstrap.zip" | grep -q ' bootstrap$' || { echo "package-lambda.sh: bootstrap missing from the zip" >&2; exit 1; }
echo "package-lambda.sh: $out/bootstrap.zip ($arch) ready; set lambda_zip_path to it and terraform apply"
