#!/usr/bin/env bash
# Build the collection tarball and unpack it where ansible-test expects a collection
# (.../ansible_collections/wabiz/cluster), with the test trees ansible-test runs beside it.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
build=${WABIZ_BUILD_DIR:-$here/.build}
dist=$build/dist
root=$build/collections/ansible_collections/wabiz/cluster
rm -rf "$dist" "$root"
mkdir -p "$dist" "$root"
ansible-galaxy collection build "$here" --output-path "$dist" --force >/dev/null
tar -xzf "$dist"/wabiz-cluster-*.tar.gz -C "$root"
for t in unit integration sanity; do
  [ -d "$here/tests/$t" ] && rsync -a --exclude __pycache__ "$here/tests/$t" "$root/tests/"
done
# ansible-test lists content with git from the nearest repository upwards; this tree sits in the
# project's ignored .build folder, so give it a repository of its own.
git -C "$root" init -q
echo "tests/output/" >"$root/.git/info/exclude"
git -C "$root" add -A
echo "$root"
