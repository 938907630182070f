"""The log-following compressor helper: `python -m generic_worker.deflate LOG COPY STATUS LEVEL`."""

import sys

from generic_worker.deflate import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], sys.stdin.fileno()))
