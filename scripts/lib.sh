# Shared by the scripts: find Go, install Debian packages when missing.

# ensure_go puts Go on PATH (the machines' Go lives in /usr/local/go).
ensure_go() {
  if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
    export PATH="/usr/local/go/bin:$PATH"
  fi
  if ! command -v go >/dev/null 2>&1; then
    echo "Go 1.26 or newer is needed: https://go.dev/doc/install" >&2
    exit 1
  fi
  export PATH="$(go env GOPATH)/bin:$PATH"
}

# apt_install PKG... installs Debian packages, with sudo when not root.
apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing with apt-get: $*" >&2
  $sudo apt-get update -qq || true
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@"
}

# ensure_engines installs redis-server and memcached when they are not on PATH.
ensure_engines() {
  local missing=()
  command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
  command -v memcached >/dev/null 2>&1 || missing+=(memcached)
  if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
  fi
}
