"""generic-worker for Python: a Taskcluster worker compatible with the Go generic-worker."""

__version__ = "0.1.0"
