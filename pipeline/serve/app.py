"""The web application: a page to drop photos on, and the JSON API it calls.

    GET  /          the page (pipeline/serve/page.py)
    GET  /runs      the served runs: name, decoder, encoder, beam size, whether it has attention
    POST /caption   multipart/form-data: one or more ``image`` files, optional ``run`` (a name or
                    "all", default the first run), optional ``url`` (only with allow_urls);
                    or application/json: {"images": [{"name": ..., "data": <base64>}], "run": ...},
                    {"image": <base64>} or {"url": ...}

Every image is answered on its own: {"name", "ok": true, "captions": [one per run]} or
{"name", "ok": false, "error"}; a request where every image failed is a 422, a body over the size
limit a 413, an unknown run a 404. Decoding runs in each run's batcher thread, uploads are decoded
in the thread pool, so the event loop only moves bytes. Nothing is written to disk (multipart
parts larger than a megabyte spool to the system temp folder and are removed with the request),
and answers name runs and uploaded files, never a path of this machine.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import urllib.request
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route

from pipeline.serve.page import PAGE
from pipeline.serve.served_run import Decoded, ServedRun
from pipeline.serve.uploads import BadImage, Upload, decode_upload


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 20 * 1024 * 1024  # one request's body
    max_images: int = 16  # per request
    url_timeout_s: float = 10.0


class ClientError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def create_app(runs: list[ServedRun], limits: Limits = Limits(), allow_urls: bool = False) -> Starlette:
    by_name = {r.name: r for r in runs}

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE)

    async def list_runs(request: Request) -> JSONResponse:
        return JSONResponse({"runs": [r.describe() for r in runs], "allow_urls": allow_urls,
                             "max_bytes": limits.max_bytes, "max_images": limits.max_images})

    async def caption(request: Request) -> JSONResponse:
        try:
            uploads, run_name = await _read_request(request, limits, allow_urls)
            chosen = _chosen_runs(run_name, runs, by_name)
        except ClientError as e:
            if e.status == 413:
                await _discard_rest_of_body(request, limits)
            return JSONResponse({"error": str(e)}, status_code=e.status)
        results = await asyncio.gather(*(_answer(u, chosen) for u in uploads))
        status = 422 if not any(r["ok"] for r in results) else 200
        return JSONResponse({"results": results}, status_code=status)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        yield
        for run in runs:  # stop the decoding threads
            run.close()

    return Starlette(routes=[Route("/", page), Route("/runs", list_runs), Route("/caption", caption, methods=["POST"])],
                     lifespan=lifespan)


async def _answer(upload: Upload, runs: list[ServedRun]) -> dict:
    try:
        decoded: dict[str, Decoded] = {}
        for run in runs:  # runs whose encoders see images alike share one decode
            if run.input_key not in decoded:
                decoded[run.input_key] = Decoded(*await run_in_threadpool(decode_upload, upload, run.encoder.preprocessing,
                                                                          run.transform))
        captions = await asyncio.gather(*(asyncio.wrap_future(run.batcher.submit(decoded[run.input_key]))
                                          for run in runs))
        return {"name": upload.name, "ok": True, "captions": list(captions)}
    except BadImage as e:
        return {"name": upload.name, "ok": False, "error": str(e)}


def _chosen_runs(name: str | None, runs: list[ServedRun], by_name: dict[str, ServedRun]) -> list[ServedRun]:
    if not name:
        return runs[:1]
    if name == "all":
        return runs
    if name not in by_name:
        raise ClientError(404, f"unknown run {name!r}; served: {', '.join(by_name)}")
    return [by_name[name]]


async def _read_request(request: Request, limits: Limits, allow_urls: bool) -> tuple[list[Upload], str | None]:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limits.max_bytes:
        raise ClientError(413, f"request of {int(declared):,} bytes is over the limit of {limits.max_bytes:,}")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        uploads, run, url = await _read_form(request, limits)
    elif kind == "application/json":
        uploads, run, url = _read_json(await _body(request, limits))
    else:
        raise ClientError(415, "send multipart/form-data (field 'image') or application/json ({'image': base64})")
    if url:
        if not allow_urls:
            raise ClientError(403, "fetching URLs is off on this server (start it with --allow-urls)")
        uploads.append(await run_in_threadpool(_fetch, url, limits))
    if not uploads:
        raise ClientError(400, "no image in the request; send one or more 'image' files")
    if len(uploads) > limits.max_images:
        raise ClientError(413, f"{len(uploads)} images is over the limit of {limits.max_images} per request")
    return uploads, run


async def _body(request: Request, limits: Limits) -> bytes:
    """The body, refused with 413 as soon as it passes the limit (a client may not declare a length)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limits.max_bytes:
            raise ClientError(413, f"request body is over the limit of {limits.max_bytes:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _discard_rest_of_body(request: Request, limits: Limits) -> None:
    """Read and drop what is left of a refused body, so the client gets to read the 413.

    A client such as urllib or curl sends the whole body before it reads the answer; a server
    that answers and closes with unread bytes in its socket makes the kernel reset the
    connection, and the client sees "connection reset" instead of the reason (nginx's
    "lingering close" solves the same). The drain is bounded in bytes and seconds, so a
    client that declares gigabytes cannot hold the server: past the bound it gets the reset.
    """
    budget = _DRAIN_FACTOR * limits.max_bytes

    async def drain() -> None:
        nonlocal budget
        while budget > 0:
            message = await request.receive()  # ASGI level: works after a parser stopped half-way
            budget -= len(message.get("body", b""))
            if message["type"] != "http.request" or not message.get("more_body", False):
                return

    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(drain(), timeout=_DRAIN_TIMEOUT_S)


_DRAIN_FACTOR = 4  # a refused body is read up to 4 x the limit before the connection is dropped
_DRAIN_TIMEOUT_S = 10.0


async def _read_form(request: Request, limits: Limits) -> tuple[list[Upload], str | None, str | None]:
    try:
        form = await request.form(max_files=limits.max_images + 1, max_part_size=limits.max_bytes)
    except Exception as e:  # malformed multipart, a part over the limit, or too many files
        status = 413 if any(w in str(e).lower() for w in ("exceed", "too large", "too many")) else 400
        raise ClientError(status, f"cannot read the upload ({e})") from None
    try:
        uploads = []
        for i, item in enumerate(form.getlist("image")):
            if isinstance(item, str):
                raise ClientError(400, "field 'image' must be a file upload")
            uploads.append(Upload(item.filename or f"image {i + 1}", await item.read()))
        run, url = form.get("run"), form.get("url")
        return uploads, run if isinstance(run, str) else None, url if isinstance(url, str) and url.strip() else None
    finally:
        await form.close()  # spooled temporary files are removed here


def _read_json(body: bytes) -> tuple[list[Upload], str | None, str | None]:
    try:
        data = json.loads(body)
    except ValueError as e:
        raise ClientError(400, f"body is not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise ClientError(400, "JSON body must be an object such as {'image': '<base64>'}")
    items = data.get("images", [])
    if "image" in data:
        items = [*items, {"name": "image 1", "data": data["image"]}]
    uploads = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("data"), str):
            raise ClientError(400, f"images[{i}] must be {{'name': ..., 'data': '<base64>'}}")
        try:
            raw = base64.b64decode(item["data"].split(",")[-1], validate=True)  # a data: URI works too
        except (binascii.Error, ValueError):
            raise ClientError(400, f"images[{i}] is not valid base64") from None
        uploads.append(Upload(str(item.get("name") or f"image {i + 1}"), raw))
    return uploads, data.get("run"), data.get("url")


def _fetch(url: str, limits: Limits) -> Upload:
    name = url.rsplit("/", 1)[-1][:80] or "url"
    if not url.lower().startswith(("http://", "https://")):
        raise ClientError(400, "only http:// and https:// URLs are fetched")
    try:
        with urllib.request.urlopen(url, timeout=limits.url_timeout_s) as answer:  # noqa: S310 (http(s) only)
            data = answer.read(limits.max_bytes + 1)
    except Exception as e:
        raise ClientError(400, f"cannot fetch {name!r} ({type(e).__name__}: {e})") from None
    if len(data) > limits.max_bytes:
        raise ClientError(413, f"{name!r} is over the limit of {limits.max_bytes:,} bytes")
    return Upload(name, data)
