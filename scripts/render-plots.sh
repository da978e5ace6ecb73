#!/usr/bin/env bash
# Renders every SVG of a flow output directory and of docs/ to PNG, to look at them.
# Usage: render-plots.sh FLOW_OUT PNG_DIR [ZOOM]
#   FLOW_OUT  a `kaq flow --out` directory (its *.svg, at any depth)
#   PNG_DIR   where the PNGs go: PNG_DIR/flow/<path>.png and PNG_DIR/docs/<path>.png
#   ZOOM      rsvg-convert's zoom factor (default 1.5)
# Needs rsvg-convert (Debian/Ubuntu: apt-get install librsvg2-bin). Prints each PNG written.
set -euo pipefail
flow=${1:?usage: render-plots.sh FLOW_OUT PNG_DIR [ZOOM]}
out=${2:?usage: render-plots.sh FLOW_OUT PNG_DIR [ZOOM]}
zoom=${3:-1.5}
command -v rsvg-convert >/dev/null || {
  echo "render-plots.sh: rsvg-convert not found (apt-get install librsvg2-bin)" >&2
  exit 2
}
[ -d "$flow" ] || { echo "render-plots.sh: $flow is not a directory" >&2; exit 2; }
docs=$(cd "$(dirname "$0")/.." && pwd)/docs
count=0
render() { # SRC_ROOT LABEL
  local root=$1 label=$2 svg rel png
  while IFS= read -r -d '' svg; do
    rel=${svg#"$root"/}
    png="$out/$label/${rel%.svg}.png"
    mkdir -p "$(dirname "$png")"
    rsvg-convert --zoom "$zoom" --background-color white -o "$png" "$svg"
    echo "$png"
    count=$((count + 1))
  done < <(find "$root" -name '*.svg' -not -path '*/.kaq-*' -print0 | sort -z)
}
render "$(cd "$flow" && pwd)" flow
render "$docs" docs
echo "render-plots.sh: $count PNGs in $out" >&2
