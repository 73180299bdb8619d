#!/usr/bin/env bash
# Build the collection tarball and unpack it where ansible-test expects a collection
# (.../ansible_collections/wabiz/cluster), with the test trees ansible-test runs beside it.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dist=$here/.build/dist
root=$here/.build/collections/ansible_collections/wabiz/cluster
rm -rf "$dist" "$root"
mkdir -p "$dist" "$root"
ansible-galaxy collection build "$here" --output-path "$dist" --force >/dev/null
tar -xzf "$dist"/wabiz-cluster-*.tar.gz -C "$root"
for t in unit integration sanity; do
  [ -d "$here/tests/$t" ] && rsync -a --exclude __pycache__ "$here/tests/$t" "$root/tests/"
done
echo "$root"
