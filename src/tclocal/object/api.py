"""The object service: createUpload (dataInline or putUrl), finishUpload, downloads, metadata."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from tclocal.context import Context
from tclocal.core.endpoints import Call, Endpoint, Reply, health_endpoints, json_reply
from tclocal.core.errors import APIError
from tclocal.core.timestamps import parse_iso, to_iso
from tclocal.core.validation import DATE_TIME, PROJECT_ID, SLUGID, Validator, obj
from tclocal.object import store as object_store

_HASHES = {
    "type": "object",
    "additionalProperties": True,
    "required": [],
    "properties": {
        "sha256": {"type": "string", "pattern": "^[a-z0-9]{64}$"},
        "sha512": {"type": "string", "pattern": "^[a-z0-9]{128}$"},
    },
}
_PROJECT = {"type": "string", "minLength": 1, "maxLength": 500, "pattern": PROJECT_ID}
CREATE_UPLOAD = Validator(
    obj(
        ["projectId", "uploadId", "expires", "proposedUploadMethods"],
        projectId=_PROJECT,
        uploadId={"type": "string", "pattern": SLUGID},
        expires=DATE_TIME,
        hashes=_HASHES,
        proposedUploadMethods=obj(
            [],
            dataInline=obj(
                ["contentType", "objectData"],
                contentType={"type": "string"},
                objectData={"type": "string", "maxLength": 10926},
            ),
            putUrl=obj(
                ["contentType", "contentLength"],
                contentType={"type": "string"},
                contentLength={"type": "integer"},
            ),
        ),
    )
)
FINISH_UPLOAD = Validator(
    obj(
        ["uploadId", "projectId"],
        projectId=_PROJECT,
        uploadId={"type": "string", "pattern": SLUGID},
        hashes=_HASHES,
    )
)
START_DOWNLOAD = Validator(
    obj(
        ["acceptDownloadMethods"],
        acceptDownloadMethods=obj(
            [], simple={"type": "boolean", "const": True}, getUrl={"type": "boolean", "const": True}
        ),
    )
)
UPLOAD_SCOPE = "object:upload:<projectId>:<name>"
DOWNLOAD_SCOPE = "object:download:<name>"


class ObjectService:
    """Handlers for the object service."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def create_upload(self, call: Call) -> Reply:
        """Handle `createUpload`: reserve the object and pick an upload method (dataInline wins)."""
        name, body = call.params["name"], call.body
        call.authorize(projectId=body["projectId"], name=name)
        expires = parse_iso(body["expires"])
        await self.ctx.db.run(
            lambda c: object_store.create_upload(
                c, name, body["projectId"], body["uploadId"], expires, body.get("hashes", {})
            )
        )
        proposed = body["proposedUploadMethods"]
        method: dict[str, Any] = {}
        key = object_store.blob_key(name)
        if "dataInline" in proposed:
            inline = proposed["dataInline"]
            try:
                data = base64.b64decode(inline["objectData"], validate=True)
            except binascii.Error as err:
                raise APIError("InputError", "objectData is not valid base64") from err
            await self.ctx.blobs.store_bytes(key, data, inline["contentType"])
            method = {"dataInline": True}
        elif "putUrl" in proposed:
            put = proposed["putUrl"]
            url, url_expires = self.ctx.blobs.signed_url(key, "PUT", self.ctx.settings.blob_url_lifetime)
            headers = {"Content-Type": put["contentType"], "Content-Length": str(put["contentLength"])}
            method = {"putUrl": {"url": url, "expires": to_iso(url_expires), "headers": headers}}
        return {
            "projectId": body["projectId"],
            "uploadId": body["uploadId"],
            "expires": body["expires"],
            "uploadMethod": method,
        }

    async def finish_upload(self, call: Call) -> Reply:
        """Handle `finishUpload`: record hashes and mark the object complete."""
        name, body = call.params["name"], call.body
        call.authorize(projectId=body["projectId"], name=name)
        row = await self.ctx.db.run(lambda c: object_store.get(c, name))
        if row is not None and not row["finished"]:
            if await self.ctx.blobs.metadata(object_store.blob_key(name)) is None:
                raise APIError("InputError", f'No data was uploaded for object "{name}"')
        await self.ctx.db.run(
            lambda c: object_store.finish_upload(
                c, name, body["projectId"], body["uploadId"], body.get("hashes", {})
            )
        )
        return {}

    async def _metadata(self, name: str) -> dict[str, Any]:
        meta: dict[str, Any] = await self.ctx.db.run(lambda c: object_store.finished_or_404(c, name))
        return meta

    def _url(self, name: str) -> tuple[str, float]:
        return self.ctx.blobs.signed_url(
            object_store.blob_key(name), "GET", self.ctx.settings.blob_url_lifetime
        )

    async def start_download(self, call: Call) -> Reply:
        """Handle `startDownload`: `getUrl` (with hashes) if accepted, else `simple`."""
        name = call.params["name"]
        meta = await self._metadata(name)
        accepted = call.body["acceptDownloadMethods"]
        url, expires = self._url(name)
        if accepted.get("getUrl"):
            return {"method": "getUrl", "url": url, "expires": to_iso(expires), "hashes": meta["hashes"]}
        if accepted.get("simple"):
            return {"method": "simple", "url": url}
        raise APIError("NoMatchingMethod", "Object supports methods getUrl, simple")

    async def object(self, call: Call) -> Reply:
        """Handle `object`: metadata of a finished object."""
        meta = await self._metadata(call.params["name"])
        return {"projectId": meta["projectId"], "expires": to_iso(meta["expires"]), "hashes": meta["hashes"]}

    async def download(self, call: Call) -> Reply:
        """Handle `download`: 303 to the object's content."""
        name = call.params["name"]
        await self._metadata(name)
        url, _ = self._url(name)
        return json_reply({"method": "simple", "url": url}, 303, {"Location": url})

    def endpoints(self) -> list[Endpoint]:
        """The endpoint table."""
        return [
            *health_endpoints(),
            Endpoint(
                "createUpload", "PUT", "/upload/<*name>", self.create_upload, UPLOAD_SCOPE, CREATE_UPLOAD
            ),
            Endpoint(
                "finishUpload",
                "POST",
                "/finish-upload/<*name>",
                self.finish_upload,
                UPLOAD_SCOPE,
                FINISH_UPLOAD,
            ),
            Endpoint(
                "startDownload",
                "PUT",
                "/start-download/<*name>",
                self.start_download,
                DOWNLOAD_SCOPE,
                START_DOWNLOAD,
            ),
            Endpoint("object", "GET", "/metadata/<*name>", self.object, DOWNLOAD_SCOPE),
            Endpoint("download", "GET", "/download/<*name>", self.download, DOWNLOAD_SCOPE),
        ]
