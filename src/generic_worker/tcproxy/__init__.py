"""The built-in Taskcluster proxy: one loopback HTTP server per task, signing with its credentials.

- `server`: `TaskclusterProxy` (routing, forwarding, `/bewit`, the refused `/credentials`);
- `routes`: task-facing paths -> Taskcluster URLs;
- `signing`: Hawk headers and bewits through the official client's code.
"""

from generic_worker.tcproxy.server import TaskclusterProxy

__all__ = ["TaskclusterProxy"]
