"""tc-local's web view: task groups, tasks, artifacts and logs (live and stored) in a browser.

Paths follow the Taskcluster UI's (`/tasks/<taskId>`, `/tasks/groups/<taskGroupId>`,
`/tasks/<taskId>/runs/<runId>/logs/<name>`), so a link from a real deployment works by swapping
the host. Pages are rendered on the server (Jinja2, autoescaped) and readable without
JavaScript; one small script, shipped in the package, follows a running task's live log.
Wiring: `WebView(ctx)` gives the routes and the HTML index that `/` serves to browsers.
"""

from tclocal.web.views import WebView

__all__ = ["WebView"]
