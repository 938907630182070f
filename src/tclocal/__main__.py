"""`python -m tclocal`: the only place in tc-local that calls sys.exit."""

import sys

from tclocal.cli import main

if __name__ == "__main__":
    sys.exit(int(main()))
