"""The index service: dotted namespaces of indexed tasks with upstream's rank rule."""
