"""The multiuser engine's operating-system side: task users, start-up checks, crash leftovers.

`runTasksAsCurrentUser: false` (Linux, worker running as root): every task run gets a fresh
`task_<n>` OS user whose home is its task directory; the engine creates it before the task's
features start and deletes it (with its processes, files and group memberships) afterwards.
`identity` runs file operations with a task user's rights, so paths a task controls are never
used with root's.
"""
