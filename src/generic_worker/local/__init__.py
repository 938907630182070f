"""Running the worker on one machine with an embedded tc-local: `make demo` and `generic-worker exec`."""
