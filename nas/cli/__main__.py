"""``python -m nas.cli``: the same entry point as the ``nas`` script."""

from nas.cli import entry

if __name__ == "__main__":
    entry()
