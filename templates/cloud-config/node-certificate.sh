#!/bin/sh
# node-certificate: get this etcd member's certificate from the provisioning container
# at boot, before etcd starts. The node's address was not known when its user-data was
# made, and the certificate must name it, so the key is made here, and a CSR for it goes
# with the address (node-address filled it in) to the panel. The panel is checked by its
# key's pin; the node shows the enrolment token only this user-data holds. The answer
# must be a certificate of the cluster's CA for this key. Written by Vulcano: no value in
# it is user input. With a certificate in place it does nothing (a reboot asks nothing).
set -eu
enrol=$1
# shellcheck disable=SC1090 # written by Vulcano beside this script
. "$enrol"
dir=$enrol_dir
key=$dir/node-key.pem
cert=$dir/node.pem
[ -s "$cert" ] && exit 0
umask 077
work=$(mktemp -d "$dir/.enrol.XXXXXX")
trap 'rm -rf "$work"' EXIT
if [ ! -s "$key" ]; then
  openssl ecparam -name prime256v1 -genkey -noout -out "$work/key.pem"
  mv "$work/key.pem" "$key"
fi
openssl req -new -key "$key" -subj "/CN=$enrol_name" -out "$work/csr.pem"
# The token goes in a header read from a file: never on a command line.
printf 'Authorization: Bearer %s\n' "$enrol_token" > "$work/header"
tries=120
while :; do
  # --insecure: no CA vouches for the panel; its key's pin is checked all the same
  status=0
  code=$(curl --silent --show-error --insecure --pinnedpubkey "$enrol_pin" \
    --connect-timeout 10 --max-time 30 --header "@$work/header" \
    --header "Content-Type: application/pkcs10" --data-binary "@$work/csr.pem" \
    --output "$work/cert.pem" --write-out '%{http_code}' \
    "$enrol_url?address=$enrol_address") || status=$?
  if [ "$status" -eq 90 ]; then
    echo "node-certificate: $enrol_url is not the panel: its key is not the pinned one" >&2
    exit 1
  fi
  [ "$status" -eq 0 ] || code=000
  case "$code" in
    200) break ;;
    4??)
      echo "node-certificate: the panel refused ($code): $(head -c 400 "$work/cert.pem")" >&2
      exit 1
      ;;
  esac
  tries=$((tries - 1))
  if [ "$tries" -le 0 ]; then
    echo "node-certificate: no certificate from $enrol_url (last answer $code)" >&2
    exit 1
  fi
  sleep 5
done
if ! openssl verify -CAfile "$dir/ca.pem" "$work/cert.pem" > /dev/null; then
  echo "node-certificate: the answer is not a certificate of the cluster's CA" >&2
  exit 1
fi
if [ "$(openssl x509 -in "$work/cert.pem" -noout -pubkey)" != "$(openssl pkey -in "$key" -pubout)" ]; then
  echo "node-certificate: the certificate is not for this node's key" >&2
  exit 1
fi
chmod 0644 "$work/cert.pem"
chown "$enrol_owner:" "$key" "$work/cert.pem"
mv "$work/cert.pem" "$cert"
rm -f "$enrol"
echo "node-certificate: $cert issued for $enrol_address" >&2
