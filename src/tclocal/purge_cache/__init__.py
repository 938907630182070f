"""The purge-cache service: requests to purge a named cache on every worker of a pool."""
