"""The system catalog: what a standard deployment installs in ``/whisk.system`` at start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from openwhisk_emulator.apigateway import MANAGEMENT_PATH
from openwhisk_emulator.manifest import load_manifest
from openwhisk_emulator.registry import PACKAGES, SYSTEM_NAMESPACE

CATALOG_DIR = Path(__file__).resolve().parent / "catalog"


def install_catalog(emu: Any) -> dict[str, int]:
    """Load the catalog's packages and actions into namespace whisk.system."""
    counts = load_manifest(emu, CATALOG_DIR, namespace=SYSTEM_NAMESPACE)
    apimgmt = emu.registry.get(PACKAGES, f"{SYSTEM_NAMESPACE}/apimgmt")
    # As a deployment binds the gateway's URL and credentials into the package (and marks the
    # actions final, so no caller can override them).
    apimgmt.parameters = [
        {"key": "gwUrl", "value": emu.config.api_host + MANAGEMENT_PATH},
        {"key": "gwUser", "value": emu.gateway.user},
        {"key": "gwPwd", "value": emu.gateway.password},
    ]
    return counts
