"""The search space: ArchConfig (the knobs), presets, the topologies that compile a config into
the IR, and the Optuna/enumeration view of the space."""

from search_spaces.config import (
    ArchConfig,
    ConfigError,
    PartConfig,
    from_dict,
    load_config,
    parse_yaml,
    preset_names,
    save_config,
    validate,
)
from search_spaces.families import compile_config

__all__ = [
    "ArchConfig",
    "ConfigError",
    "PartConfig",
    "compile_config",
    "from_dict",
    "load_config",
    "parse_yaml",
    "preset_names",
    "save_config",
    "validate",
]
