"""Merging config layers (built-in AWS values, then the file over them) before validation.

Keys match case-insensitively, as in the loader: each key is stored under its canonical JSON
name, so `instanceID` in the file overrides `instanceId` from the AWS layer instead of being
reported twice. Nested objects (`workerTypeMetadata`) merge recursively; anything else is
last-wins. Unknown keys are kept, for the validator to report.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from generic_worker.config.schema import config_keys


def merge_layers(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Merge config mappings; later layers win, nested objects merge recursively."""
    known = {info.key.lower(): info.key for info in config_keys()}
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            name = known.get(key.lower(), key)
            merged[name] = _merge_value(merged.get(name), value)
    return merged


def _merge_value(old: Any, new: Any) -> Any:
    if isinstance(old, dict) and isinstance(new, dict):
        result = dict(old)
        for key, value in new.items():
            result[key] = _merge_value(result.get(key), value)
        return result
    return new
