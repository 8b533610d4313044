#!/usr/bin/env bash
# Creates the mutual-TLS material for CoucheStor with openssl, for installs without Helm
# (deploy/operator.yaml) or to replace the chart's generated certificates:
#   ca.crt / ca.key                 the CA (keep ca.key offline)
#   agent.crt / agent.key           agent serving certificate: DNS SAN couchestor-agent,
#                                   serverAuth + clientAuth (the exec probe calls the agent with it)
#   controller.crt / controller.key controller client certificate (clientAuth)
# Usage: deploy/gen-certs.sh DIR [DAYS] [SERVER_NAME]
set -euo pipefail
dir=${1:?usage: $0 DIR [DAYS] [SERVER_NAME]}
days=${2:-3650}
name=${3:-couchestor-agent}
mkdir -p "$dir"
cd "$dir"
umask 077
openssl req -x509 -newkey rsa:3072 -nodes -days "$days" -subj /CN=couchestor-ca \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
  -keyout ca.key -out ca.crt 2>/dev/null
sign() { # $1 = name, $2 = CN, $3 = extensions
  openssl req -newkey rsa:3072 -nodes -subj "/CN=$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
  printf '%b' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" \
    -out "$1.crt" -extfile "$1.ext" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}
sign agent "$name" "subjectAltName=DNS:$name\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n"
sign controller couchestor-controller "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n"
rm -f ca.srl
echo "gen-certs: wrote ca, agent and controller certificates to $(pwd)"
