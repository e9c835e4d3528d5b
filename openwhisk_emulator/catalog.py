"""The system catalog: what a standard deployment installs in ``/whisk.system`` at start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openwhisk_emulator.manifest import load_manifest
from openwhisk_emulator.registry import SYSTEM_NAMESPACE

CATALOG_DIR = Path(__file__).resolve().parent / "catalog"


def install_catalog(emu: Any) -> dict[str, int]:
    """Load the catalog's packages and actions into namespace whisk.system."""
    return load_manifest(emu, CATALOG_DIR, namespace=SYSTEM_NAMESPACE)
