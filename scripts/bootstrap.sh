# Sourced by scripts/run and scripts/test: installs what this machine lacks, idempotently.
# Everything Parley needs is installed here, never by hand.

log() { printf '\n== %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

apt_install() {
  # apt_install PKG... : install the Debian packages that are missing.
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

ensure_python() {
  # ensure_python EXTRAS : a .venv with parley installed (editable) with those extras.
  local py="" cand
  for cand in python3 python3.13 python3.12 python3.11; do
    if "$cand" -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1; then
      py=$cand; break
    fi
  done
  [ -n "$py" ] || { echo "Parley needs Python >= 3.11 (python3 is $(python3 --version 2>&1))" >&2; return 1; }
  [ -x .venv/bin/python ] || { log "creating .venv"; "$py" -m venv .venv || { apt_install python3-venv; "$py" -m venv .venv; }; }
  local stamp=".venv/.parley-installed-$1" want
  want=$(cat pyproject.toml | sha256sum | cut -c1-16)
  if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "pip install -e .[$1]"
    .venv/bin/python -m pip install -q --disable-pip-version-check -U pip
    .venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$1]"
    echo "$want" > "$stamp"
  fi
}

ensure_node() {
  command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || apt_install nodejs npm
}

ensure_web_assets() {
  ensure_node
  .venv/bin/python scripts/build_web.py
}
