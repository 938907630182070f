"""Worker configuration: the typed, frozen `Config` and its loader."""

from generic_worker.config.load import (
    COMPAT_KEYS,
    ConfigInvalidError,
    ConfigLoadError,
    config_from_mapping,
    load_config,
)
from generic_worker.config.schema import Config, KeyInfo, Kind, config_keys

__all__ = [
    "COMPAT_KEYS",
    "Config",
    "ConfigInvalidError",
    "ConfigLoadError",
    "KeyInfo",
    "Kind",
    "config_from_mapping",
    "config_keys",
    "load_config",
]
