"""`python -m generic_worker.demo` (what `make demo` runs)."""

import sys

from generic_worker.demo import main

if __name__ == "__main__":
    sys.exit(main())
