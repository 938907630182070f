"""The index service: insertTask, findTask, listings, deleteTask and findArtifactFromTask.

Completed tasks with `index.<namespace>` routes are indexed by the queue itself (see
`index_store.index_completed_task`), in the same transaction that resolves them.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from tclocal.context import Context
from tclocal.core.endpoints import Call, Endpoint, Reply, health_endpoints, json_reply, page_args
from tclocal.core.errors import APIError
from tclocal.core.timestamps import parse_iso
from tclocal.core.validation import DATE_TIME, SLUGID, Validator, obj
from tclocal.index import store as index_store

INSERT_TASK = Validator(
    obj(
        ["taskId", "rank", "data", "expires"],
        taskId={"type": "string", "pattern": SLUGID},
        rank={"type": "number"},
        data={"type": "object"},
        expires=DATE_TIME,
    )
)


class IndexService:
    """Handlers for the index service."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def find_task(self, call: Call) -> Reply:
        """Handle `findTask`."""
        path = call.params["indexPath"]
        entry = await self.ctx.db.run(lambda c: index_store.find(c, path))
        if entry is None:
            raise APIError("ResourceNotFound", f"Indexed task not found: {path}")
        return entry

    async def insert_task(self, call: Call) -> Reply:
        """Handle `insertTask`: keeps an existing entry of higher rank."""
        namespace, body = call.params["namespace"], call.body
        expires = parse_iso(body["expires"])
        return await self.ctx.db.run(
            lambda c: index_store.insert(c, namespace, body["taskId"], body["rank"], body["data"], expires)
        )

    async def delete_task(self, call: Call) -> Reply:
        """Handle `deleteTask`."""
        namespace = call.params["namespace"]
        await self.ctx.db.run(lambda c: index_store.delete(c, namespace))
        return None

    async def list_namespaces(self, call: Call) -> Reply:
        """Handle `listNamespaces`: the child namespaces."""
        namespace = call.params.get("namespace", "")
        after, limit = page_args(call)
        children = await self.ctx.db.run(lambda c: index_store.list_namespaces(c, namespace))
        children = [n for n in children if n["name"] > after]
        result: dict[str, Any] = {"namespaces": children[:limit]}
        if len(children) > limit:
            result["continuationToken"] = children[limit - 1]["name"]
        return result

    async def list_tasks(self, call: Call) -> Reply:
        """Handle `listTasks`: entries directly in a namespace."""
        namespace = call.params.get("namespace", "")
        after, limit = page_args(call)
        tasks = await self.ctx.db.run(lambda c: index_store.list_tasks(c, namespace, after, limit + 1))
        result: dict[str, Any] = {"tasks": tasks[:limit]}
        if len(tasks) > limit:
            result["continuationToken"] = tasks[limit - 1]["namespace"]
        return result

    async def find_artifact_from_task(self, call: Call) -> Reply:
        """Handle `findArtifactFromTask`: 303 to the queue's getLatestArtifact for the indexed task."""
        entry = await self.find_task(call)
        assert isinstance(entry, dict)
        name = quote(call.params["name"], safe="")
        url = f"{self.ctx.root_url}/api/queue/v1/task/{entry['taskId']}/artifacts/{name}"
        return json_reply({"url": url}, 303, {"Location": url})

    def endpoints(self) -> list[Endpoint]:
        """The endpoint table."""
        page = ("continuationToken", "limit")
        return [
            *health_endpoints(),
            Endpoint(
                "findArtifactFromTask",
                "GET",
                "/task/<indexPath>/artifacts/<*name>",
                self.find_artifact_from_task,
                "queue:get-artifact:<name>",
            ),
            Endpoint("findTask", "GET", "/task/<indexPath>", self.find_task, "index:find-task:<indexPath>"),
            Endpoint(
                "insertTask",
                "PUT",
                "/task/<namespace>",
                self.insert_task,
                "index:insert-task:<namespace>",
                INSERT_TASK,
            ),
            Endpoint(
                "deleteTask", "DELETE", "/task/<namespace>", self.delete_task, "index:delete-task:<namespace>"
            ),
            Endpoint(
                "listNamespaces",
                "GET",
                "/namespaces/<?namespace>",
                self.list_namespaces,
                "index:list-namespaces:<namespace>",
                query=page,
            ),
            Endpoint(
                "listTasks",
                "GET",
                "/tasks/<?namespace>",
                self.list_tasks,
                "index:list-tasks:<namespace>",
                query=page,
            ),
        ]
