#!/usr/bin/env bash
# Build the offline release archive (`make dist`): everything a store machine without
# internet access needs to install receipt-agent with scripts/install.sh --offline.
#
#   scripts/make_dist.sh [--out DIR] [--python PY]
#
# The archive receipt-agent-<version>-<python tag>-<platform>.tar.gz holds one folder:
#   wheelhouse/     the receipt-agent wheel and a wheel of every runtime dependency, at
#                   the pinned versions of requirements/constraints.txt, for the Python
#                   that --python names (default python3: the target's version and
#                   platform must match it, as compiled wheels such as pydantic-core are
#                   built for one Python and one platform);
#   scripts/install.sh, systemd/ (the unit, logrotate, the spool drop-in example),
#   config/ (example.yaml and examples/), requirements/constraints.txt, README.md.
# Needs the network (or a pip cache/mirror) once, here; the store machine never does.
set -euo pipefail

SOURCE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="$SOURCE_DIR/dist"
PYTHON="${PYTHON:-python3}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --python) PYTHON="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "make_dist.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
say() { printf 'make_dist.sh: %s\n' "$*"; }

mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$SOURCE_DIR/pyproject.toml" | head -1)"
tag="$("$PYTHON" -c 'import sys, sysconfig; print(f"py{sys.version_info[0]}{sys.version_info[1]}-" + sysconfig.get_platform().replace("-", "_"))')"
name="receipt-agent-$version"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
stage="$work/$name"
mkdir -p "$stage/wheelhouse"

PIP=("$PYTHON" -m pip --disable-pip-version-check --quiet)
PINS=()
if [[ -f "$SOURCE_DIR/requirements/constraints.txt" ]]; then
  PINS=(-c "$SOURCE_DIR/requirements/constraints.txt")
fi
# The package itself, built from this tree in isolation (no editable metadata).
"${PIP[@]}" wheel --no-deps --wheel-dir "$work/own" "$SOURCE_DIR"
own_wheel="$(ls "$work"/own/receipt_agent-*.whl)"
# Every runtime dependency as a wheel (downloaded, or built once here from an sdist).
"${PIP[@]}" wheel "${PINS[@]}" --wheel-dir "$stage/wheelhouse" "$own_wheel"
say "wheelhouse: $(ls "$stage/wheelhouse" | wc -l) wheels for $tag"

copy() { mkdir -p "$(dirname "$stage/$1")"; cp -p "$SOURCE_DIR/$1" "$stage/$1"; }
copy scripts/install.sh
copy systemd/receipt-agent.service
copy systemd/receipt-agent.logrotate
copy systemd/receipt-agent.service.d/spool.conf.example
copy config/example.yaml
for example in "$SOURCE_DIR"/config/examples/*.yaml; do
  [[ -e "$example" ]] && copy "config/examples/$(basename "$example")"
done
[[ -f "$SOURCE_DIR/requirements/constraints.txt" ]] && copy requirements/constraints.txt
copy README.md

archive="$OUT/$name-$tag.tar.gz"
tar -C "$work" -czf "$archive.tmp" "$name"
mv "$archive.tmp" "$archive"
say "wrote $archive ($(du -k "$archive" | cut -f1) KB)"
