"""What every benchmark shares: where results go, progress output, distributions and plots."""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def results_dir() -> Path:
    """The results folder: ``$WABIZ_BENCH_DIR`` or ``.build/bench`` in the checkout."""
    path = Path(os.environ.get("WABIZ_BENCH_DIR") or ROOT / ".build" / "bench")
    path.mkdir(parents=True, exist_ok=True)
    return path


def say(msg: str) -> None:
    """Progress on stderr, with the wall-clock time (long waits must show they are alive)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    s = sorted(values)
    k = (len(s) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def distribution(values: Iterable[float], ndigits: int = 4) -> dict[str, Any]:
    """n, min, p50, p90, p99, max and mean of a sample, rounded for reports."""
    v = [float(x) for x in values]
    if not v:
        return {"n": 0}
    return {"n": len(v), "min": round(min(v), ndigits), "p50": round(percentile(v, 50), ndigits),
            "p90": round(percentile(v, 90), ndigits), "p99": round(percentile(v, 99), ndigits),
            "max": round(max(v), ndigits), "mean": round(sum(v) / len(v), ndigits)}


def write_json(name: str, data: dict[str, Any]) -> Path:
    """Write ``<results>/<name>.json`` and return its path."""
    path = results_dir() / f"{name}.json"
    data = {"benchmark": name, "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **data}
    path.write_text(json.dumps(data, indent=2) + "\n")
    say(f"wrote {path}")
    return path


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def cdf_points(values: Sequence[float]) -> tuple[list[float], list[float]]:
    """x (sorted values) and y (fraction <= x) of an empirical CDF."""
    s = sorted(values)
    return s, [(i + 1) / len(s) for i in range(len(s))]


def save_figure(fig: Any, name: str) -> Path:
    path = results_dir() / f"{name}.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)
    say(f"wrote {path}")
    return path
