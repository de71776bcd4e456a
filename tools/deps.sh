#!/usr/bin/env bash
# tools/deps.sh - install the Debian packages mailferry builds and tests with,
# but only those that are missing. Needs root (or sudo) only when something
# is missing.
set -euo pipefail

# pkg-config module or file probe -> Debian package
need=()
probe_pc() { pkg-config --exists "$1" 2>/dev/null || need+=("$2"); }
probe_file() { [ -e "$1" ] || need+=("$2"); }
probe_cmd() { command -v "$1" >/dev/null 2>&1 || need+=("$2"); }

probe_cmd pkg-config pkg-config
probe_cmd cmake cmake
probe_cmd ninja ninja-build
probe_cmd cc gcc
probe_pc libuv libuv1-dev
probe_pc libetpan libetpan-dev
probe_pc libpst libpst-dev
probe_pc libcurl libcurl4-gnutls-dev
probe_pc zlib zlib1g-dev
probe_pc sqlite3 libsqlite3-dev
probe_pc inih libinih-dev
probe_pc nettle nettle-dev
probe_pc gnutls libgnutls28-dev
probe_file /usr/include/csv.h libcsv-dev
probe_pc ldap libldap-dev
# for the tests: readpst (oracle), sqlite3 CLI, Dovecot, clang for fuzzing
probe_cmd readpst pst-utils
probe_cmd sqlite3 sqlite3
probe_cmd dovecot dovecot-imapd
probe_cmd clang clang
probe_cmd node nodejs
probe_cmd npm npm
probe_cmd flock util-linux
probe_cmd python3 python3
probe_cmd openssl openssl
# for tests/integration/report_html.sh: a real browser renders the HTML
# report (the test skips without it)
probe_cmd chromium chromium
# for tests/integration/coexist.sh: a real LDAP server
probe_file /usr/sbin/slapd slapd
# for the benchmark (ninja bench): mbsync, GNU time, bc
probe_cmd mbsync isync
probe_file /usr/bin/time time
probe_cmd bc bc

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

# Cyrus IMAP and Courier-IMAP for the tests, unpacked under build/servers/
# (not installed: both conflict with dovecot-imapd). apt-get download needs
# the package lists: on a machine whose lists are empty or stale, update
# them once and try again.
servers() {
  "$(dirname "$0")/cyrus.sh" build/servers/cyrus && "$(dirname "$0")/courier.sh" build/servers/courier
}
if ! servers; then
  $sudo apt-get update -qq || true
  servers || echo "deps: Cyrus or Courier could not be unpacked; their tests will skip" >&2
fi
# Dovecot's package starts a system instance where it can; the tests run
# their own instances on loopback and need nothing from it.
