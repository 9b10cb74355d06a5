"""The search space: ArchConfig (the knobs), presets, the topologies that compile a config into
the IR, and the Optuna/enumeration view of the space. Blocks and families are registered in
:mod:`search_spaces.registry`."""

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
from search_spaces.registry import BLOCKS, FAMILIES, register_block, register_family

__all__ = [
    "BLOCKS",
    "FAMILIES",
    "ArchConfig",
    "ConfigError",
    "PartConfig",
    "compile_config",
    "from_dict",
    "load_config",
    "parse_yaml",
    "preset_names",
    "register_block",
    "register_family",
    "save_config",
    "validate",
]
