"""``python -m tensorforge`` is the ``tensorforge`` command line."""
from .cli import main

if __name__ == "__main__":
    main(prog_name="tensorforge")
