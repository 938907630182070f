"""The queue service: tasks, runs, claims, artifacts, and the reaper that resolves expired claims."""
