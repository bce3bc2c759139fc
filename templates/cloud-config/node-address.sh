#!/bin/sh
# node-address: put this node's address where Vulcano wrote @NODE_IP@ (etcd's and the
# agent's configuration), before either starts. The address is the source address of
# the default route: what a cloud gives the machine, unknown when its user-data was
# made. Written by Vulcano; no value in it is user input. Once the files hold an
# address it does nothing (a reboot keeps the address the member was made with).
set -eu
mark=@NODE_IP@
tries=60
ip=""
while [ "$tries" -gt 0 ]; do
  ip=$(ip -4 -o route get 192.0.2.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n 1)
  [ -n "$ip" ] && break
  tries=$((tries - 1))
  sleep 2
done
case "$ip" in
  "" | *[!0-9.]*)
    echo "node-address: no IPv4 default route with a source address" >&2
    exit 1
    ;;
esac
for file in "$@"; do
  if grep -q "$mark" "$file"; then
    sed -i "s/$mark/$ip/g" "$file"
    echo "node-address: $file uses $ip" >&2
  fi
done
