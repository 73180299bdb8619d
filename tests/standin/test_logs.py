"""Coreapp/master log rotation (the data guide): rotate above the size, compress, keep 30
rotated files next to the log, move older ones to archive/, never delete anything."""

from __future__ import annotations

import gzip
import logging
from pathlib import Path

from wabiz_standin import logs


def test_coreapp_rotation_keeps_30_compressed_and_archives_older_never_deleting(tmp_path: Path) -> None:
    log = logs.setup("coreapp", "c1", str(tmp_path), rotate_bytes=2000)
    log.removeHandler(log.handlers[0])  # not to stdout
    line = "x" * 190
    for n in range(35 * 12):
        log.info("%04d %s", n, line)
    for h in log.handlers:
        h.flush()
    rotated = sorted(tmp_path.glob("coreapp.log.*.gz"))
    archived = sorted((tmp_path / "archive").glob("coreapp.log.*.gz"))
    assert len(rotated) == 30
    assert len(archived) >= 1
    assert (tmp_path / "coreapp.log").stat().st_size < 2000 + 400
    texts = [gzip.decompress(f.read_bytes()).decode() for f in archived + rotated]
    texts.append((tmp_path / "coreapp.log").read_text())
    seen = [int(x.split(" INFO coreapp c1 ")[1][:4]) for t in texts for x in t.splitlines()]
    assert seen == list(range(35 * 12)), "every line kept, in order, none deleted"
    assert max(f.stat().st_size for f in rotated) < 2000, "rotated files are compressed"
    logging.getLogger("wabiz").handlers.clear()
