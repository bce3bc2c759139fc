#!/bin/sh
# node-address: put this node's address where Vulcano wrote @NODE_IP@ (etcd's and the
# agent's configuration), before either starts. The address is the source address of
# the route towards the node's peers (else of the default route): what a cloud gives
# the machine, unknown when its user-data was made. Written by Vulcano; no value in it is user input. Once the files hold an
# address it does nothing (a reboot keeps the address the member was made with).
set -eu
# --via HOST[,HOST…] (repeatable): where the node's peers are (the panel, the members,
# the discovery service); the address is the source of the route towards the first
# that routes, else of the default route.
vias=""
while [ "$#" -ge 2 ] && [ "$1" = "--via" ]; do
  vias="$vias $(printf '%s' "$2" | tr ',' ' ')"
  shift 2
done
mark=@NODE_IP@
source_towards() {
  case "$1" in
    *[!0-9.]*) target=$(getent ahostsv4 "$1" 2>/dev/null | awk 'NR == 1 { print $1 }') ;;
    *) target=$1 ;;
  esac
  [ -n "$target" ] || return 0
  ip -4 -o route get "$target" 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n 1
}
tries=60
ip=""
while [ "$tries" -gt 0 ]; do
  for via in $vias 192.0.2.1; do
    ip=$(source_towards "$via")
    [ -n "$ip" ] && break
  done
  [ -n "$ip" ] && break
  tries=$((tries - 1))
  sleep 2
done
case "$ip" in
  "" | *[!0-9.]*)
    echo "node-address: no IPv4 route with a source address towards${vias:- the default}" >&2
    exit 1
    ;;
esac
for file in "$@"; do
  if grep -q "$mark" "$file"; then
    sed -i "s/$mark/$ip/g" "$file"
    echo "node-address: $file uses $ip" >&2
  fi
done
