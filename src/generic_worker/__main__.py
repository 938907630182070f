"""`python -m generic_worker`: the only place in the package that calls sys.exit."""

import sys

from generic_worker.cli import main

if __name__ == "__main__":
    sys.exit(int(main()))
