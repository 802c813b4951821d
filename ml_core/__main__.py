"""``python -m ml_core ...``: see ml_core.cli."""

from ml_core.cli import main

if __name__ == "__main__":
    main()
