"""Queue endpoints for artifacts: create/finish, get (303/424), list, info and content.

Storage types: `s3` (body PUT to a signed blob URL of tc-local's own), `object` (uploaded
through the object service with credentials the queue hands out), `reference` (a URL),
`link` (another artifact of the same run) and `error` (a reason and message, served as 424).
Re-creating an artifact identically is idempotent; a `reference` may be replaced by another
`reference` or a `link`; expiry may be extended but not shortened; anything else is 409.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from typing import Any

import slugid

from tclocal.context import Context
from tclocal.core.endpoints import Call, Endpoint, Reply, json_reply, page_args
from tclocal.core.errors import APIError
from tclocal.core.timestamps import now, parse_iso, to_iso
from tclocal.object import store as object_store
from tclocal.queue import store as queue_store
from tclocal.queue.model import TaskRecord
from tclocal.queue.schemas import FINISH_ARTIFACT, POST_ARTIFACT

GET_SCOPES = {"AllOf": [{"for": "name", "in": "names", "each": "queue:get-artifact:<name>"}]}
RUN = "/task/<taskId>/runs/<runId>"
LATEST = "/task/<taskId>"
DRIFT = 15 * 60


def object_name(task_id: str, run_id: int, name: str) -> str:
    """The object-service name of an `object` artifact (upstream's `t/<taskId>/<runId>/<name>`)."""
    return f"t/{task_id}/{run_id}/{name}"


def blob_key(task_id: str, run_id: int, name: str) -> str:
    """The blob-store key of an `s3` artifact."""
    return f"artifacts/{task_id}/{run_id}/{name}"


def _row_to_api(row: sqlite3.Row) -> dict[str, Any]:
    info: dict[str, Any] = {
        "storageType": row["storage_type"],
        "name": row["name"],
        "expires": to_iso(row["expires"]),
        "contentType": row["content_type"],
    }
    if row["content_length"] is not None:
        info["contentLength"] = row["content_length"]
    return info


def _artifact_row(
    conn: sqlite3.Connection, key: tuple[str, int, str], present_only: bool
) -> sqlite3.Row | None:
    """An artifact row by (taskId, runId, name), optionally only if present (finished)."""
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM artifacts WHERE task_id = ? AND run_id = ? AND name = ?"
        + (" AND present = 1" if present_only else ""),
        key,
    ).fetchone()
    return row


def _compatible(original: sqlite3.Row, new: dict[str, Any]) -> bool:
    """Tell whether a re-created artifact is compatible (upstream's createArtifactCallsCompatible)."""
    if new["storage_type"] != "link" and original["content_type"] != new["content_type"]:
        return False
    if original["expires"] > new["expires"]:
        return False
    if original["storage_type"] == new["storage_type"]:
        kind = new["storage_type"]
        if kind == "object":  # a retried create gets the same uploadId, until it is finished
            return not bool(original["present"])
        return bool(kind == "reference" or json.loads(original["details"]) == new["details"])
    return bool(original["storage_type"] == "reference" and new["storage_type"] == "link")


def _store_artifact(
    conn: sqlite3.Connection, key: tuple[str, int, str], new: dict[str, Any]
) -> dict[str, Any]:
    """Insert or compatibly update an artifact; return its details as stored."""
    original = _artifact_row(conn, key, present_only=False)
    if original is not None:
        if not _compatible(original, new):
            raise APIError(
                "RequestConflict",
                "Artifact `{{name}}` already exists with a different storageType, contentType, "
                "details or a later expiry",
                name=key[2],
                originalArtifact=_row_to_api(original),
            )
        if new["storage_type"] == "object":
            return dict(json.loads(original["details"]))
    conn.execute(
        "INSERT OR REPLACE INTO artifacts (task_id, run_id, name, storage_type, content_type, "
        "content_length, expires, present, details) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            *key,
            new["storage_type"],
            new["content_type"],
            new["content_length"],
            new["expires"],
            int(new["storage_type"] != "object"),
            json.dumps(new["details"]),
        ),
    )
    return dict(new["details"])


class QueueArtifacts:
    """Handlers for the artifact endpoints of the queue."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def _check_run(self, task: TaskRecord | None, run_id: int, current: float) -> dict[str, Any]:
        if task is None:
            raise APIError("InputError", "Task not found")
        if not 0 <= run_id < len(task.runs):
            raise APIError("InputError", "Run not found")
        run = task.runs[run_id]
        if "workerGroup" not in run:
            raise APIError("InputError", "Run was not claimed by a worker and so no artifacts can exist")
        grace = self.ctx.settings.artifact_grace_after_exception
        late_ok = run["state"] == "exception" and parse_iso(run["resolved"]) > current - grace
        if run["state"] != "running" and not late_ok:
            raise APIError(
                "RequestConflict",
                "Artifacts cannot be created for a task after it is resolved, unless it is resolved "
                "'exception', and even in this case only up to 25 min past resolution.",
                status=task.status(),
            )
        return run

    async def create_artifact(self, call: Call) -> Reply:
        """Handle `createArtifact`."""
        task_id, run_id, name = call.params["taskId"], int(call.params["runId"]), call.params["name"]
        body, current = call.body, now()
        expires = parse_iso(body["expires"])
        if expires < current - DRIFT:
            raise APIError("InputError", "Expires must be in the future")
        kind = body["storageType"]
        details: dict[str, Any] = {
            "s3": {},
            "object": {"uploadId": slugid.nice()},
            "reference": {"url": body.get("url")},
            "link": {"artifact": body.get("artifact")},
            "error": {"message": body.get("message"), "reason": body.get("reason")},
        }[kind]
        new = {
            "storage_type": kind,
            "content_type": body.get("contentType", "application/binary"),
            "content_length": body.get("contentLength"),
            "expires": expires,
            "details": details,
        }

        def write(conn: sqlite3.Connection) -> tuple[TaskRecord, dict[str, Any]]:
            task = queue_store.load(conn, task_id)
            self._check_run(task, run_id, current)
            assert task is not None
            if expires > task.expires:
                raise APIError(
                    "InputError",
                    "Artifact expires ({{expires}}) after the task expiration {{taskExpires}} "
                    "(task.expires < expires) - this is not allowed, artifacts may not expire "
                    "after the task they belong to expires",
                    expires=to_iso(expires),
                    taskExpires=task.definition["expires"],
                )
            stored = _store_artifact(conn, (task_id, run_id, name), new)
            if kind == "object":
                object_store.lock_upload(
                    conn,
                    object_name(task_id, run_id, name),
                    task.definition["projectId"],
                    stored["uploadId"],
                    expires,
                )
            return task, stored

        task, stored = await self.ctx.db.run(write)
        return self._create_reply(task, run_id, name, new, stored)

    def _create_reply(
        self, task: TaskRecord, run_id: int, name: str, new: dict[str, Any], stored: dict[str, Any]
    ) -> dict[str, Any]:
        kind = new["storage_type"]
        if kind == "s3":
            url, url_expires = self.ctx.blobs.signed_url(
                blob_key(task.task_id, run_id, name), "PUT", self.ctx.settings.blob_url_lifetime
            )
            return {
                "storageType": "s3",
                "putUrl": url,
                "contentType": new["content_type"],
                "expires": to_iso(url_expires),
            }
        if kind == "object":
            run = task.runs[run_id]
            project = task.definition["projectId"]
            obj = object_name(task.task_id, run_id, name)
            credentials = self.ctx.temporary_credentials(
                f"artifact-upload/{task.task_id}/{run_id}/on/{run['workerGroup']}/{run['workerId']}",
                [f"object:upload:{project}:{obj}"],
                min(new["expires"], now() + 24 * 3600),
            )
            return {
                "storageType": "object",
                "name": obj,
                "projectId": project,
                "uploadId": stored["uploadId"],
                "expires": to_iso(new["expires"]),
                "credentials": credentials,
            }
        return {"storageType": kind}

    async def finish_artifact(self, call: Call) -> Reply:
        """Handle `finishArtifact`: only for `object` artifacts, once the object's upload is finished."""
        task_id, run_id, name = call.params["taskId"], int(call.params["runId"]), call.params["name"]
        upload_id = call.body["uploadId"]

        def write(conn: sqlite3.Connection) -> None:
            row = _artifact_row(conn, (task_id, run_id, name), present_only=False)
            if row is None:
                raise APIError("ResourceNotFound", "Artifact not found")
            if row["storage_type"] != "object":
                raise APIError("InputError", "Only object artifacts can be finished")
            if row["present"]:
                return
            if json.loads(row["details"]).get("uploadId") != upload_id:
                raise APIError("InputError", "given uploadId does not match that for the artifact")
            if not object_store.is_finished(conn, object_name(task_id, run_id, name)):
                raise APIError("InputError", "Object storing artifact data does not exist")
            conn.execute(
                "UPDATE artifacts SET present = 1, details = '{}' "
                "WHERE task_id = ? AND run_id = ? AND name = ?",
                (task_id, run_id, name),
            )

        await self.ctx.db.run(write)
        return None

    async def _latest_run(self, task_id: str) -> int:
        task = await self.ctx.db.run(lambda c: queue_store.load(c, task_id))
        if task is None:
            raise APIError("ResourceNotFound", "Task not found")
        if not task.runs:
            raise APIError("ResourceNotFound", "Task doesn't have any runs")
        return len(task.runs) - 1

    async def _follow(self, call: Call, task_id: str, run_id: int, name: str) -> sqlite3.Row:
        """Load an artifact, following links (checking get-artifact scopes on every name)."""
        names: list[str] = []
        while True:
            names.append(name)
            call.authorize(names=names)
            row = await self.ctx.db.run(
                functools.partial(_artifact_row, key=(task_id, run_id, name), present_only=False)
            )
            if row is None or not row["present"]:
                raise APIError("ResourceNotFound", "Artifact not found")
            if row["expires"] < now():
                raise APIError("ResourceExpired", "Artifact expired")
            if row["storage_type"] != "link":
                return row
            name = json.loads(row["details"])["artifact"]
            if name in names:
                raise APIError("InputError", "Artifact leads to a link cycle")

    def _download_url(self, row: sqlite3.Row, run_id: int) -> str:
        if row["storage_type"] == "s3":
            key = blob_key(row["task_id"], run_id, row["name"])
        else:
            key = object_store.blob_key(object_name(row["task_id"], run_id, row["name"]))
        return self.ctx.blobs.signed_url(key, "GET", self.ctx.settings.blob_url_lifetime)[0]

    async def _redirect(self, call: Call, task_id: str, run_id: int, name: str) -> Reply:
        row = await self._follow(call, task_id, run_id, name)
        kind = row["storage_type"]
        details = json.loads(row["details"])
        headers = {"x-taskcluster-artifact-storage-type": kind}
        if kind == "error":
            return json_reply({"reason": details["reason"], "message": details["message"]}, 424, headers)
        url = details["url"] if kind == "reference" else self._download_url(row, run_id)
        return json_reply({"storageType": kind, "url": url}, 303, {**headers, "Location": url})

    async def get_artifact(self, call: Call) -> Reply:
        """Handle `getArtifact`: 303 to the content (424 for error artifacts)."""
        p = call.params
        return await self._redirect(call, p["taskId"], int(p["runId"]), p["name"])

    async def get_latest_artifact(self, call: Call) -> Reply:
        """Handle `getLatestArtifact`."""
        call.authorize(names=[call.params["name"]])
        run_id = await self._latest_run(call.params["taskId"])
        return await self._redirect(call, call.params["taskId"], run_id, call.params["name"])

    async def _content(self, call: Call, task_id: str, run_id: int, name: str) -> Reply:
        row = await self._follow(call, task_id, run_id, name)
        kind, details = row["storage_type"], json.loads(row["details"])
        if kind == "error":
            return {"storageType": kind, "reason": details["reason"], "message": details["message"]}
        if kind == "reference":
            return {"storageType": kind, "url": details["url"]}
        if kind == "s3":
            return {"storageType": kind, "url": self._download_url(row, run_id)}
        obj = object_name(task_id, run_id, row["name"])
        credentials = self.ctx.temporary_credentials(
            f"artifact-download/{task_id}/{run_id}/{row['name']}",
            [f"object:download:{obj}"],
            now() + 3600,
        )
        return {"storageType": kind, "name": obj, "credentials": credentials}

    async def artifact(self, call: Call) -> Reply:
        """Handle `artifact`: how to fetch the content (artifact-content-response)."""
        p = call.params
        return await self._content(call, p["taskId"], int(p["runId"]), p["name"])

    async def latest_artifact(self, call: Call) -> Reply:
        """Handle `latestArtifact`."""
        call.authorize(names=[call.params["name"]])
        run_id = await self._latest_run(call.params["taskId"])
        return await self._content(call, call.params["taskId"], run_id, call.params["name"])

    async def _list(self, call: Call, task_id: str, run_id: int) -> Reply:
        latest = await self._latest_run(task_id)
        if run_id > latest:
            raise APIError(
                "ResourceNotFound", f"Task with taskId: `{task_id}` has no run with runId: {run_id}"
            )
        after, limit = page_args(call)
        rows = await self.ctx.db.run(
            lambda c: c.execute(
                "SELECT * FROM artifacts WHERE task_id = ? AND run_id = ? AND present = 1 "
                "AND name > ? ORDER BY name LIMIT ?",
                (task_id, run_id, after, limit + 1),
            ).fetchall()
        )
        result: dict[str, Any] = {"artifacts": [_row_to_api(r) for r in rows[:limit]]}
        if len(rows) > limit:
            result["continuationToken"] = rows[limit - 1]["name"]
        return result

    async def list_artifacts(self, call: Call) -> Reply:
        """Handle `listArtifacts`."""
        return await self._list(call, call.params["taskId"], int(call.params["runId"]))

    async def list_latest_artifacts(self, call: Call) -> Reply:
        """Handle `listLatestArtifacts`."""
        task_id = call.params["taskId"]
        return await self._list(call, task_id, await self._latest_run(task_id))

    async def _info(self, task_id: str, run_id: int, name: str) -> Reply:
        row = await self.ctx.db.run(
            functools.partial(_artifact_row, key=(task_id, run_id, name), present_only=True)
        )
        if row is None:
            raise APIError("ResourceNotFound", "Artifact not found")
        return _row_to_api(row)

    async def artifact_info(self, call: Call) -> Reply:
        """Handle `artifactInfo`."""
        p = call.params
        return await self._info(p["taskId"], int(p["runId"]), p["name"])

    async def latest_artifact_info(self, call: Call) -> Reply:
        """Handle `latestArtifactInfo`."""
        task_id = call.params["taskId"]
        return await self._info(task_id, await self._latest_run(task_id), call.params["name"])

    def endpoints(self) -> list[Endpoint]:
        """The endpoint table."""
        create = "queue:create-artifact:<taskId>/<runId>"
        listing, latest_listing = "queue:list-artifacts:<taskId>:<runId>", "queue:list-artifacts:<taskId>"
        page = ("continuationToken", "limit")
        named, latest_named = f"{RUN}/artifacts/<*name>", f"{LATEST}/artifacts/<*name>"
        return [
            Endpoint("createArtifact", "POST", named, self.create_artifact, create, POST_ARTIFACT),
            Endpoint("finishArtifact", "PUT", named, self.finish_artifact, create, FINISH_ARTIFACT),
            Endpoint("getArtifact", "GET", named, self.get_artifact, GET_SCOPES),
            Endpoint("getLatestArtifact", "GET", latest_named, self.get_latest_artifact, GET_SCOPES),
            Endpoint("listArtifacts", "GET", f"{RUN}/artifacts", self.list_artifacts, listing, query=page),
            Endpoint(
                "listLatestArtifacts",
                "GET",
                f"{LATEST}/artifacts",
                self.list_latest_artifacts,
                latest_listing,
                query=page,
            ),
            Endpoint("artifactInfo", "GET", f"{RUN}/artifact-info/<*name>", self.artifact_info, listing),
            Endpoint(
                "latestArtifactInfo",
                "GET",
                f"{LATEST}/artifact-info/<*name>",
                self.latest_artifact_info,
                latest_listing,
            ),
            Endpoint("artifact", "GET", f"{RUN}/artifact-content/<*name>", self.artifact, GET_SCOPES),
            Endpoint(
                "latestArtifact",
                "GET",
                f"{LATEST}/artifact-content/<*name>",
                self.latest_artifact,
                GET_SCOPES,
            ),
        ]
