#!/bin/sh
# Install vulcano-agent into /opt/vulcano unless it is there, from the agent bundle the
# provisioning container serves: a tar.gz of wheels (Vulcano's and its dependencies')
# for this node's Python, at <base URL>/vulcano-agent-cpXY.tar.gz. The base URL is the
# only line of /etc/vulcano/agent-bundle-url. Written by Vulcano; no value in it is
# user input.
set -eu
venv=/opt/vulcano
url_file=/etc/vulcano/agent-bundle-url
if [ -f "$venv/.installed" ] && [ -x "$venv/bin/vulcano-agent" ]; then
  exit 0
fi
if [ ! -s "$url_file" ]; then
  echo "install-agent: $venv holds no agent and $url_file names no bundle" >&2
  exit 1
fi
base=$(head -n 1 "$url_file")
tag=$(python3 -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "install-agent: fetching the $tag bundle" >&2
curl -fsSL --retry 10 --retry-connrefused --retry-delay 3 --max-time 600 \
  -o "$work/bundle.tar.gz" "$base/vulcano-agent-$tag.tar.gz"
mkdir "$work/wheels"
tar -xzf "$work/bundle.tar.gz" -C "$work/wheels"
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-index \
  --find-links "$work/wheels" vulcano
"$venv/bin/vulcano-agent" --version >&2
touch "$venv/.installed"
