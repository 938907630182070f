"""tc-local: a local Taskcluster-compatible platform (queue, auth, object, ...) on SQLite."""
