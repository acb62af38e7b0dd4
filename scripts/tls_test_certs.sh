#!/usr/bin/env bash
# Makes a throw-away TLS test PKI in DIR (for tests, the demo and the benchmarks; never for
# production): a CA (ca.pem), a sender certificate for localhost / 127.0.0.1 (sender.pem,
# sender.key) and a client certificate (client.pem, client.key), all signed by the CA, ECDSA P-256,
# valid 7 days. Needs the openssl command (Debian package openssl). Usage: tls_test_certs.sh DIR
set -euo pipefail
dir="${1:?usage: tls_test_certs.sh DIR}"
mkdir -p "$dir"
cd "$dir"
ec=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
openssl req -x509 "${ec[@]}" -keyout ca.key -out ca.pem -days 7 -subj "/CN=kvstream test CA" 2>/dev/null
sign() {  # sign NAME SUBJECT EXT
  openssl req "${ec[@]}" -keyout "$1.key" -out "$1.csr" -subj "$2" 2>/dev/null
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -out "$1.pem" -days 7 -extfile "$1.ext" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
sign sender "/CN=localhost" "subjectAltName=DNS:localhost,IP:127.0.0.1"
sign client "/CN=kvstream test client" "extendedKeyUsage=clientAuth"
chmod 600 ./*.key
