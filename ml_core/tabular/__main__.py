"""``python -m ml_core.tabular ...``: see ml_core.tabular.cli."""

from ml_core.tabular.cli import main

if __name__ == "__main__":
    main()
