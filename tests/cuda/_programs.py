"""Programs and inputs shared by the CUDA tests (the per-op harness's, ``tests/ops/_harness.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ops"))
from _harness import all_elementwise, inputs, vjp_of  # noqa: E402

__all__ = ["all_elementwise", "inputs", "vjp_of"]
