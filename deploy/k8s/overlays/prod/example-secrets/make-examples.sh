#!/usr/bin/env bash
# Regenerates the EXAMPLE certificates in this folder (a throwaway CA, the
# services' server certificates and the executor's client certificate for
# memory). Examples only: their private keys are public in this repository.
# In a real install, cert-manager (or your PKI) issues these Secrets.
set -euo pipefail
cd "$(dirname "$0")"
days=3650
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
key ca.key
openssl req -x509 -new -key ca.key -sha256 -days "$days" -subj "/CN=attune EXAMPLE CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
  -out ca.crt
issue() { # name, subject CN, extended key usage, subjectAltName
  key "$1.key"
  openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=%s\n%s\n' \
    "$3" "${4:+subjectAltName=$4}" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -sha256 \
    -days "$days" -extfile "$1.ext" -out "$1.crt" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
issue memory attune-memory serverAuth \
  "DNS:attune-memory,DNS:attune-memory-headless,DNS:attune-memory.attune.svc,DNS:attune-memory-headless.attune.svc,DNS:attune-memory-headless.attune.svc.cluster.local,DNS:localhost,IP:127.0.0.1"
issue executor attune-executor serverAuth \
  "DNS:attune-executor,DNS:attune-executor.attune.svc,DNS:attune-executor.attune.svc.cluster.local,DNS:localhost,IP:127.0.0.1"
issue executor-memory-client svc:executor clientAuth ""
rm -f ca.srl ca.key  # nothing more is issued from this example CA
