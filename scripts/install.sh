#!/usr/bin/env bash
# Install receipt-agent as a systemd service on a store machine. Idempotent: run it
# again to upgrade; it never overwrites /etc/receipt-agent/config.yaml or the secret.
#
#   sudo scripts/install.sh                      # from this source tree
#   sudo scripts/install.sh --wheel dist/receipt_agent-0.1.0-py3-none-any.whl
#   scripts/install.sh --root /tmp/stage         # into a staging root, no root needed
#   sudo ./scripts/install.sh --offline          # from an unpacked release archive (make
#                                                # dist): its wheelhouse only, no network
#
# What it does, each step skipped when already done:
#   1. the system user and group `receipt-agent` (systemd/receipt-agent.service: User=);
#   2. a venv in $PREFIX (default /opt/receipt-agent) with the package pip-installed
#      (its console script is $PREFIX/bin/receipt-agent, linked from /usr/local/bin),
#      on /usr/bin/python3 when that is 3.11+, checked to be runnable by the user;
#   3. /etc/receipt-agent/config.yaml from config/example.yaml, only if absent;
#   4. the unit, the logrotate file, and examples in $PREFIX/share/receipt-agent;
#   5. `systemctl daemon-reload`, only when systemd runs this machine.
# It does not start or enable the service: configure it first (README, "Install on a
# store machine").
#
# --root DIR (or DESTDIR=DIR) installs below DIR as if it were /: users are not created,
# ownership is not changed, systemd is not told. The venv is made at DIR$PREFIX and its
# scripts name that path, so it runs from there (tests) but is not relocatable.
set -euo pipefail

usage() {
  sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'
  cat <<'EOF'

Options:
  --root DIR     install below DIR (default: $DESTDIR, else /)
  --prefix DIR   the venv (default: $PREFIX, else /opt/receipt-agent)
  --wheel FILE   install this wheel instead of the source tree
  --python PY    the Python 3.11+ that creates the venv
                 (default: /usr/bin/python3 when 3.11+, else python3 on PATH)
  --offline      install from the release archive's wheelhouse/ with no package index
                 and no network (the default when run from an unpacked archive)
EOF
}

SOURCE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROOT="${DESTDIR:-/}"
PREFIX="${PREFIX:-/opt/receipt-agent}"
WHEEL=""
PYTHON="${PYTHON:-}"
OFFLINE=0
SERVICE_USER="receipt-agent"
DEFAULT_PREFIX="/opt/receipt-agent"

while [[ $# -gt 0 ]]; do
  case "$1" in
    --root) ROOT="$2"; shift 2 ;;
    --root=*) ROOT="${1#*=}"; shift ;;
    --prefix) PREFIX="$2"; shift 2 ;;
    --prefix=*) PREFIX="${1#*=}"; shift ;;
    --wheel) WHEEL="$2"; shift 2 ;;
    --wheel=*) WHEEL="${1#*=}"; shift ;;
    --python) PYTHON="$2"; shift 2 ;;
    --python=*) PYTHON="${1#*=}"; shift ;;
    --offline) OFFLINE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done

say() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }

[[ "$PREFIX" == /* ]] || die "--prefix must be an absolute path, not $PREFIX"
ROOT="${ROOT%/}"                       # "" means the real /
IS_REAL_ROOT=0
[[ -z "$ROOT" ]] && IS_REAL_ROOT=1
if [[ $IS_REAL_ROOT == 1 && $EUID -ne 0 ]]; then
  die "installing into / needs root: run with sudo, or give --root DIR"
fi
if [[ -z "$PYTHON" ]]; then
  # A system Python first: the service user must be able to run it (see step 2).
  PYTHON=python3
  if /usr/bin/python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    PYTHON=/usr/bin/python3
  fi
fi
# An unpacked release archive (make dist) has a wheelhouse and no pyproject.toml.
WHEELHOUSE="$SOURCE_DIR/wheelhouse"
if [[ $OFFLINE == 0 && -d "$WHEELHOUSE" && ! -f "$SOURCE_DIR/pyproject.toml" ]]; then
  OFFLINE=1
fi
if [[ $OFFLINE == 1 && ! -d "$WHEELHOUSE" ]]; then
  die "--offline installs from a release archive's wheelhouse (make dist); none at $WHEELHOUSE"
fi
if [[ -n "$WHEEL" ]]; then
  [[ -f "$WHEEL" ]] || die "no wheel at $WHEEL"
  WHEEL="$(cd "$(dirname "$WHEEL")" && pwd)/$(basename "$WHEEL")"
fi

VENV="$ROOT$PREFIX"
ETC="$ROOT/etc/receipt-agent"
SHARE="$VENV/share/receipt-agent"

# Copy $1 to $2 with mode $3 unless $2 already has exactly that content.
put() {
  local source="$1" target="$2" mode="$3"
  mkdir -p "$(dirname "$target")"
  if [[ -f "$target" ]] && cmp -s "$source" "$target"; then
    say "unchanged  $target"
  else
    install -m "$mode" "$source" "$target"
    say "installed  $target"
  fi
}

# --- 1. service user -------------------------------------------------------------------
if [[ $IS_REAL_ROOT == 0 ]]; then
  say "skipped  creating user $SERVICE_USER (not installing into /)"
elif getent passwd "$SERVICE_USER" >/dev/null; then
  say "user exists  $SERVICE_USER"
else
  nologin="$(command -v nologin || echo /usr/sbin/nologin)"
  useradd --system --user-group --no-create-home \
    --home-dir /var/lib/receipt-agent --shell "$nologin" \
    --comment "receipt-agent service" "$SERVICE_USER"
  say "created user  $SERVICE_USER"
fi

# --- 2. venv and package -------------------------------------------------------------
if [[ -x "$VENV/bin/python" ]]; then
  say "venv exists  $VENV"
else
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "$PYTHON is older than Python 3.11; give --python"
  mkdir -p "$(dirname "$VENV")"
  "$PYTHON" -m venv "$VENV"
  say "created venv  $VENV"
fi
# The service runs as $SERVICE_USER: the venv's interpreter must be usable by that user.
# A Python from root's home (pyenv under /root, mode 700) is not, and the service would
# fail at every start with "Permission denied".
if [[ $IS_REAL_ROOT == 1 ]] && command -v runuser >/dev/null; then
  runuser -u "$SERVICE_USER" -- "$VENV/bin/python" -c '' 2>/dev/null \
    || die "user $SERVICE_USER cannot run $VENV/bin/python ($(readlink -f "$VENV/bin/python")); \
remove $PREFIX and run again with --python /usr/bin/python3 (a system Python 3.11+)"
fi
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check --quiet)
# The tested dependency versions: requirements/constraints.txt beside scripts/ (in the
# source tree and in the release archive). Without it pip resolves pyproject's ranges.
PINS=()
if [[ -f "$SOURCE_DIR/requirements/constraints.txt" ]]; then
  PINS=(-c "$SOURCE_DIR/requirements/constraints.txt")
fi
if [[ $OFFLINE == 1 ]]; then
  # Only the archive's wheels: no index, and no pip configuration or PIP_* variable
  # that could add one (a find-links or extra index from the machine's pip.conf).
  env -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL -u PIP_CONSTRAINT \
    PIP_CONFIG_FILE=/dev/null PIP_NO_INDEX=1 \
    "${PIP[@]}" install --upgrade --no-index --find-links "$WHEELHOUSE" "${PINS[@]}" \
    "${WHEEL:-receipt-agent}"
  say "pip-installed  $(basename "${WHEEL:-receipt-agent}") from $WHEELHOUSE (offline)"
elif [[ -n "$WHEEL" ]]; then
  "${PIP[@]}" install --upgrade "${PINS[@]}" "$WHEEL"
  say "pip-installed  $(basename "$WHEEL")"
else
  "${PIP[@]}" install --upgrade "${PINS[@]}" "$SOURCE_DIR"
  say "pip-installed  $SOURCE_DIR"
fi
"$VENV/bin/receipt-agent" --version >/dev/null \
  || die "$VENV/bin/receipt-agent does not run; see the pip output above"
mkdir -p "$ROOT/usr/local/bin"
ln -sfn "$PREFIX/bin/receipt-agent" "$ROOT/usr/local/bin/receipt-agent"
say "linked  $ROOT/usr/local/bin/receipt-agent -> $PREFIX/bin/receipt-agent"

# --- 3. configuration (never overwritten) ----------------------------------------------
mkdir -p "$ETC"
if [[ -e "$ETC/config.yaml" ]]; then
  say "kept  $ETC/config.yaml (already there)"
elif [[ -f "$SOURCE_DIR/config/example.yaml" ]]; then
  # 0640 root:receipt-agent: the service reads it, other local users do not.
  install -m 0640 "$SOURCE_DIR/config/example.yaml" "$ETC/config.yaml"
  if [[ $IS_REAL_ROOT == 1 ]]; then
    chgrp "$SERVICE_USER" "$ETC/config.yaml"
  fi
  say "installed  $ETC/config.yaml from config/example.yaml: edit it"
else
  say "skipped  $ETC/config.yaml: no config/example.yaml in $SOURCE_DIR"
fi
if [[ ! -e "$ETC/client_secret" ]]; then
  say "todo  put the client secret in $ETC/client_secret (chmod 600, owner root)"
fi

# --- 4. unit, logrotate, examples --------------------------------------------------------
unit="$(mktemp)"
trap 'rm -f "$unit"' EXIT
# The unit names the default prefix; follow --prefix so ExecStart finds the binary.
sed -e "s#$DEFAULT_PREFIX/#$PREFIX/#g" "$SOURCE_DIR/systemd/receipt-agent.service" >"$unit"
put "$unit" "$ROOT/etc/systemd/system/receipt-agent.service" 0644
put "$SOURCE_DIR/systemd/receipt-agent.logrotate" "$ROOT/etc/logrotate.d/receipt-agent" 0644
put "$SOURCE_DIR/systemd/receipt-agent.service.d/spool.conf.example" \
  "$SHARE/spool.conf.example" 0644
put "$SOURCE_DIR/README.md" "$VENV/README.md" 0644
if [[ -f "$SOURCE_DIR/config/example.yaml" ]]; then
  put "$SOURCE_DIR/config/example.yaml" "$SHARE/example.yaml" 0644
fi

# --- 5. tell systemd ---------------------------------------------------------------------
# /run/systemd/system exists exactly when systemd is PID 1 (sd_booted(3)).
if [[ $IS_REAL_ROOT == 1 && -d /run/systemd/system ]]; then
  systemctl daemon-reload
  say "ran  systemctl daemon-reload"
else
  say "skipped  systemctl daemon-reload (systemd is not running this root)"
fi

say "done. Next (README, \"Install on a store machine\"): edit /etc/receipt-agent/config.yaml,"
say "  place the secret, add the spool drop-in, then: systemctl enable --now receipt-agent"
