# Shared by scripts/demo and scripts/test: make sure .venv exists and holds Vatio with EXTRAS.
# Works on a fresh Debian / Raspberry Pi OS with only python3 present.
set -euo pipefail

VENV=${VATIO_VENV:-.venv}

as_root() {
  # run a command as root, or print it for the user and fail
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo "$@"
  else
    echo "error: this needs root. Run:  sudo $*" >&2
    echo "       then run this script again." >&2
    exit 1
  fi
}

apt_install() {
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}

ensure_venv() {
  local extras=$1
  if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "error: Vatio needs Python 3.11 or newer; this python3 is $(python3 -V 2>&1)" >&2
    exit 1
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
      # Debian ships venv (ensurepip) in its own package
      rm -rf "$VENV"
      echo "python3 cannot make a virtual environment yet: installing python3-venv" >&2
      apt_install python3-venv
      python3 -m venv "$VENV"
    fi
  fi
  # reinstall only when the project's metadata changed since the last install
  local stamp="$VENV/.vatio-installed-$extras"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[$extras]"
    touch "$stamp"
  fi
}
