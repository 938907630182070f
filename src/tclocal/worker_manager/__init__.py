"""The worker-manager service: worker pools, registered workers and their errors."""
