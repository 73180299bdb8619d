"""Logging: one line per event, state changes greppable as ``STATE <event>``.

Coreapp and master nodes rotate their own log (the data guide: keep 30 files, rotate above
15 MB, compress, archive to /var/log/whatsapp/archive, never delete old files). Webapps write
plain files that logrotate rotates (images/standin/logrotate-whatsapp-web).
"""

from __future__ import annotations

import gzip
import logging
import os
import shutil
import sys
import time
from pathlib import Path

KEEP_ROTATED = 30


class ArchivingFileHandler(logging.FileHandler):
    """Rotate above ``max_bytes``: compress to ``NAME.YYYYmmddTHHMMSS.ffffff.gz`` next to the
    log; when more than 30 such files exist, move the oldest to ``archive/``. Nothing is ever
    deleted here (cleanup.sh does that)."""

    def __init__(self, path: str, max_bytes: int) -> None:
        super().__init__(path, mode="a", encoding="utf-8")
        self.max_bytes = max_bytes

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if self.max_bytes and self.stream is not None and self.stream.tell() >= self.max_bytes:
                self.rotate()
        except OSError:
            pass
        super().emit(record)

    def rotate(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None  # type: ignore[assignment]
        src = Path(self.baseFilename)
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f".{int(time.time() * 1e6) % 1000000:06d}"
        rotated = src.with_name(f"{src.name}.{stamp}")
        os.replace(src, rotated)
        with open(rotated, "rb") as fin, gzip.open(f"{rotated}.gz", "wb") as fout:
            shutil.copyfileobj(fin, fout)
        rotated.unlink()
        olds = sorted(src.parent.glob(f"{src.name}.*.gz"))
        if len(olds) > KEEP_ROTATED:
            archive = src.parent / "archive"
            archive.mkdir(exist_ok=True)
            for f in olds[: len(olds) - KEEP_ROTATED]:
                shutil.move(str(f), str(archive / f.name))
        self.stream = self._open()


class _Formatter(logging.Formatter):
    def __init__(self, kind: str, node_id: str) -> None:
        super().__init__()
        self.prefix = f"{kind} {node_id}"

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        line = f"{ts} {record.levelname} {self.prefix} {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup(kind: str, node_id: str, log_dir: str, rotate_bytes: int) -> logging.Logger:
    log = logging.getLogger("wabiz")
    log.handlers.clear()
    log.setLevel(logging.INFO)
    log.propagate = False
    fmt = _Formatter(kind, node_id)
    out = logging.StreamHandler(sys.stdout)
    out.setFormatter(fmt)
    log.addHandler(out)
    try:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        (Path(log_dir) / "archive").mkdir(exist_ok=True)
        name = "web.log" if kind == "webapp" else f"{kind}.log"
        fh: logging.FileHandler
        if kind == "webapp":
            fh = logging.FileHandler(str(Path(log_dir) / name), encoding="utf-8")
            err = logging.FileHandler(str(Path(log_dir) / "error.log"), encoding="utf-8")
            err.setLevel(logging.WARNING)
            err.setFormatter(fmt)
            log.addHandler(err)
            access = logging.getLogger("wabiz.access")
            access.handlers.clear()
            access.propagate = False
            acc = logging.FileHandler(str(Path(log_dir) / "access.log"), encoding="utf-8")
            acc.setFormatter(fmt)
            access.addHandler(acc)
        else:
            fh = ArchivingFileHandler(str(Path(log_dir) / name), rotate_bytes)
        fh.setFormatter(fmt)
        log.addHandler(fh)
    except OSError as exc:
        log.warning("cannot write logs under %s (%s); logging to stdout only", log_dir, exc)
    return log


def state(log: logging.Logger, event: str, **fields: object) -> None:
    """One greppable line per state change: ``STATE <event> key=value ...``."""
    kv = " ".join(f"{k}={v}" for k, v in fields.items())
    log.info("STATE %s %s", event, kv)
