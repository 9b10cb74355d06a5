"""``python -m nas`` == the ``nas`` command."""

from nas.cli import entry

if __name__ == "__main__":
    entry()
