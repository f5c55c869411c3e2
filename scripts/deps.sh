# deps.sh - sourced by scripts/demo and scripts/test: installs the Debian packages ebsd
# needs to build and test, skipping the ones already present. Non-interactive; needs root
# (or sudo) only when something is missing.

EBSD_BUILD_PACKAGES="build-essential cmake pkg-config libmicrohttpd-dev libcurl4-openssl-dev
  libssl-dev libcjson-dev libcyaml-dev libyaml-dev libexpat1-dev libinih-dev uthash-dev ca-certificates curl
  libhiredis-dev libc-ares-dev"
EBSD_TEST_PACKAGES="python3 python3-boto3 python3-botocore python3-yaml python3-jsonschema awscli prometheus
  yamllint systemd clang libclang-rt-14-dev valgrind procps openssl
  redis-server redis-tools"
# zlib: gzip bodies (src/core/gzip.c); chromium: renders the page at / headless (test_page.py);
# nginx: the reference for X-Forwarded-For handling (test_realip_nginx.py).
EBSD_BUILD_PACKAGES="$EBSD_BUILD_PACKAGES zlib1g-dev"
EBSD_TEST_PACKAGES="$EBSD_TEST_PACKAGES chromium nginx"

ebsd_install_packages() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
            missing+=("$p")
    done
    ((${#missing[@]} == 0)) && return 0
    echo "Installing missing packages: ${missing[*]}"
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "need root to install: ${missing[*]}" >&2; return 1; }
        sudo="sudo"
    fi
    # An update first: a fresh machine has empty or stale package lists.
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq </dev/null || return 1
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" </dev/null || return 1
}
