#!/usr/bin/env bash
# A self-signed CA, a server certificate and partners' client certificates for a DEVELOPMENT
# broker (never production: the CA key sits beside the certificates).
# Usage: deploy/rabbitmq/make-dev-ca.sh [OUT_DIR] [HOSTNAME] [ACCOUNT ...]
#   (default: ./var/tls localhost, no client certificate)
# Writes ca_certificate.pem, ca_key.pem, server_certificate.pem, server_key.pem once (an
# existing CA and server certificate are kept, so certificates issued later chain to the same
# CA), and for each ACCOUNT client-<ACCOUNT>_certificate.pem and client-<ACCOUNT>_key.pem with
# subject CN=<ACCOUNT>: under certificate login (rabbitmq.conf, auth_mechanisms EXTERNAL) the
# broker logs the holder in as that account and as nobody else.
# Install the server files under /etc/rabbitmq/tls/ (see rabbitmq.conf), readable by rabbitmq only.
set -euo pipefail
out="${1:-./var/tls}"
host="${2:-localhost}"
shift $(($# < 2 ? $# : 2))
days=825
# P-256 keys: as strong as RSA-3072 for this purpose, and made in milliseconds.
newkey=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1)
for account in "$@"; do
  # The account becomes a certificate subject: nothing that could smuggle in another RDN.
  if ! [[ "$account" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]]; then
    echo "make-dev-ca.sh: account names are letters, digits, '.', '_' and '-' (got '$account')" >&2
    exit 2
  fi
done
if ! [[ "$host" =~ ^[A-Za-z0-9][A-Za-z0-9.-]{0,252}$ ]]; then
  echo "make-dev-ca.sh: '$host' is not a host name" >&2
  exit 2
fi
mkdir -p "$out"
chmod 700 "$out"
cd "$out"

if [ ! -f ca_certificate.pem ] || [ ! -f ca_key.pem ]; then
  openssl req -x509 "${newkey[@]}" -sha256 -nodes -days "$days" \
    -subj "/CN=Liaison development CA" \
    -keyout ca_key.pem -out ca_certificate.pem 2>/dev/null
fi

# issue NAME SUBJECT EXTENSIONS: a key and a certificate signed by the dev CA.
issue() {
  openssl req "${newkey[@]}" -sha256 -nodes -subj "$2" -keyout "$1_key.pem" -out "$1.csr" \
    2>/dev/null
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca_certificate.pem -CAkey ca_key.pem -CAcreateserial \
    -days "$days" -sha256 -extfile "$1.ext" -out "$1_certificate.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
  chmod 600 "$1_key.pem"
}

if [ ! -f server_certificate.pem ] || [ ! -f server_key.pem ]; then
  issue server "/CN=$host" "basicConstraints = CA:FALSE
keyUsage = digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:$host, IP:127.0.0.1"
fi
for account in "$@"; do
  issue "client-$account" "/CN=$account" "basicConstraints = CA:FALSE
keyUsage = digitalSignature
extendedKeyUsage = clientAuth"
done
rm -f ca_certificate.srl
chmod 600 ca_key.pem
echo "dev CA and server certificate for $host in $out${*:+; client certificates for: $*}"
echo "partners: amqps://$host:5671/liaison, trusting $out/ca_certificate.pem"
echo "  (LIAISON_TLS_CA_FILE=$out/ca_certificate.pem; with certificate login also"
echo "   LIAISON_TLS_CERT_FILE=$out/client-<account>_certificate.pem,"
echo "   LIAISON_TLS_KEY_FILE=$out/client-<account>_key.pem and amqps://$host:5671/liaison?auth=external)"
