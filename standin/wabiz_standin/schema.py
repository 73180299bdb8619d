"""Import shim for the cluster schema.

The schema lives in one file, ``plugins/module_utils/cluster_schema.py``. The image copies it
next to this package (``/opt/whatsapp/lib/wabiz_standin/cluster_schema.py``); in a checkout it
is loaded from the repository.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

try:
    from wabiz_standin import cluster_schema as S  # the copy the image build puts here
except ImportError:  # running from a checkout: load plugins/module_utils/cluster_schema.py
    _path = Path(__file__).resolve().parents[2] / "plugins" / "module_utils" / "cluster_schema.py"
    _spec = importlib.util.spec_from_file_location("wabiz_standin.cluster_schema", _path)
    if _spec is None or _spec.loader is None:
        raise ImportError(f"cluster_schema.py not found next to the package nor at {_path}") from None
    S = importlib.util.module_from_spec(_spec)
    sys.modules["wabiz_standin.cluster_schema"] = S
    _spec.loader.exec_module(S)

__all__ = ["S"]
