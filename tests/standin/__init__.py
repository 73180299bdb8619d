"""Tests of the stand-in cluster. The package ``wabiz_standin`` lives in ``standin/``."""

import sys
from pathlib import Path

_STANDIN = str(Path(__file__).resolve().parents[2] / "standin")
if _STANDIN not in sys.path:
    sys.path.insert(0, _STANDIN)
