#!/usr/bin/env bash
# Make a self-signed CA and a server certificate for a DEVELOPMENT broker (never production).
# Usage: deploy/rabbitmq/make-dev-ca.sh [OUT_DIR] [HOSTNAME]   (default: ./var/tls localhost)
# Writes ca_certificate.pem, ca_key.pem, server_certificate.pem, server_key.pem; install the
# certificate files under /etc/rabbitmq/tls/ (see rabbitmq.conf), readable by rabbitmq only.
set -euo pipefail
out="${1:-./var/tls}"
host="${2:-localhost}"
days=825
mkdir -p "$out"
chmod 700 "$out"
cd "$out"

openssl req -x509 -newkey rsa:3072 -sha256 -nodes -days "$days" \
  -subj "/CN=Liaison development CA" \
  -keyout ca_key.pem -out ca_certificate.pem

openssl req -newkey rsa:3072 -sha256 -nodes \
  -subj "/CN=$host" -keyout server_key.pem -out server.csr

cat > server.ext <<EXT
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:$host, IP:127.0.0.1
EXT
openssl x509 -req -in server.csr -CA ca_certificate.pem -CAkey ca_key.pem -CAcreateserial \
  -days "$days" -sha256 -extfile server.ext -out server_certificate.pem
rm -f server.csr server.ext ca_certificate.srl
chmod 600 ca_key.pem server_key.pem
echo "dev CA and server certificate for $host written to $out"
echo "partners: LIAISON_AMQP_URL=amqps://$host:5671/ and trust $out/ca_certificate.pem"
