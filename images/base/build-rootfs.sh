#!/usr/bin/env bash
# Make a minimal Debian root filesystem for 'docker import'.
# Usage: build-rootfs.sh DIR SUITE MIRROR PKG1,PKG2,...
set -euo pipefail
dir=$1 suite=$2 mirror=$3 include=$4
debootstrap --variant=minbase --include="$include" "$suite" "$dir" "$mirror" >/dev/null
# Small images: no recommends, no docs or man pages in later apt installs.
cat >"$dir/etc/apt/apt.conf.d/90wabiz" <<'CONF'
APT::Install-Recommends "false";
APT::Install-Suggests "false";
CONF
cat >"$dir/etc/dpkg/dpkg.cfg.d/90wabiz-nodoc" <<'CONF'
path-exclude /usr/share/doc/*
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CONF
cat >"$dir/etc/apt/sources.list" <<LIST
deb $mirror $suite main
deb $mirror $suite-updates main
deb http://deb.debian.org/debian-security $suite-security main
LIST
rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/archives/*.deb "$dir"/usr/share/doc/* "$dir"/usr/share/man/*
