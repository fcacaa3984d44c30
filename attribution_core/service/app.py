"""The attribution service: one process holds the models and indexes; clients ask over HTTP (FastAPI).

Endpoints (OpenAPI at ``/docs`` and ``/openapi.json``)::

    POST /v1/attribute          multipart: image (or image_id "SPACE/ROW"), space…, method…, k, prompt
    GET  /v1/jobs/{id}          an unlearning job's progress, then its result
    GET  /v1/spaces             every space: ready or not, and what is missing
    GET  /v1/images/{space}/{row}   a training image's thumbnail (JPEG)
    GET  /healthz, GET /metrics (Prometheus text format)

Feature spaces answer in the request (micro-batched with concurrent requests); unlearning answers with a job
(202), so no request holds a connection for a minute. Results are the JSON objects of ``attribute query --json``.
"""

from __future__ import annotations

import asyncio
import errno
import io
import logging
import tempfile
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, File, Form, HTTPException, Query, UploadFile
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from PIL import Image
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..attribute.inputs import check_k, check_prompt
from ..attribute.spaces import training_set_note
from ..core.errors import AttributionError, SpaceNotReadyError
from ..core.images import QUERY_MAX_SIDE, load_rgb, release_memory, thumbnail
from ..diffusion.generation import prompt_of
from ..registry import get_space, method_class, user_spaces
from .config import ServiceConfig
from .jobs import JobsFullError
from .middleware import ServiceMiddleware
from .state import QueueFullError, ServiceState

log = logging.getLogger(__name__)

API_VERSION = "1"
#: The errors of a full disk (EDQUOT: over quota; not on every platform).
_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def create_app(config: ServiceConfig = ServiceConfig()) -> FastAPI:  # noqa: B008
    """The ASGI app (``uvicorn`` serves it; tests call it in-process)."""
    state = ServiceState(config)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        await asyncio.get_running_loop().run_in_executor(state.model_thread, state.preload)
        yield
        state.close()

    app = FastAPI(
        title="attribution_core service",
        version=API_VERSION,
        description="Which training images influenced a generated image, and how much.",
        lifespan=lifespan,
    )
    app.state.service = state

    @app.exception_handler(AttributionError)
    async def user_error(_, exc: AttributionError) -> JSONResponse:
        status = 409 if isinstance(exc, SpaceNotReadyError) else 400
        return JSONResponse({"detail": str(exc)}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def body_error(request, exc: StarletteHTTPException) -> Response:
        """The form parser reports every failure as 400 "error parsing the body"; one of them is the server's own
        (its upload spool is full): that is a 507 the operator hears about, not the client's mistake."""
        cause = exc.__cause__
        if exc.status_code == 400 and isinstance(cause, OSError) and cause.errno in _FULL:
            log.error("an upload could not be stored: %s (free space in %s)", cause, tempfile.gettempdir())
            detail = "the service could not store the upload: its temporary folder is full; try again later"
            return JSONResponse({"detail": detail}, status_code=507)
        return await http_exception_handler(request, exc)

    @app.get(
        "/healthz",
        summary="liveness: ok, or 503 with the reason when the spaces cannot be read (a broken spaces file)",
    )
    async def healthz() -> JSONResponse:
        try:  # off the event loop; parsed once per modification of each spaces file
            await asyncio.to_thread(user_spaces)
        except AttributionError as exc:  # the reason goes to the log: /healthz needs no key, so it names no file
            log.error("unhealthy: %s", exc)
            return JSONResponse(
                {"status": "broken", "detail": "the spaces file cannot be read; the service's log says why"},
                status_code=503,
            )
        return JSONResponse({"status": "ok"})

    @app.get("/metrics", summary="Prometheus metrics (text format)", response_class=Response)
    async def metrics() -> Response:
        return Response(state.metrics.text(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/spaces", summary="every space: ready or not (and why), loaded or not")
    async def spaces() -> dict:
        return {"spaces": state.spaces()}

    @app.post(
        "/v1/attribute",
        summary="attribute one generated image",
        responses={202: {"description": "some spaces answer as jobs (unlearning): poll GET /v1/jobs/{id}"}},
    )
    async def attribute(
        image: Annotated[UploadFile | None, File(description="the generated image")] = None,
        image_id: Annotated[str | None, Form(description="a training image as the query: SPACE/ROW")] = None,
        space: Annotated[list[str] | None, Form(description="space name (repeatable)")] = None,
        method: Annotated[list[str] | None, Form(description="every ready space of this method (repeatable)")] = None,
        k: Annotated[int, Form(description="training images to list")] = 10,
        prompt: Annotated[str | None, Form(description="the image's prompt (default: its PNG metadata)")] = None,
    ) -> JSONResponse:
        k = check_k(k, "k")
        names = state.resolve(space or [], method or [])
        query, name = await _query_image(state, image, image_id)
        check_prompt(prompt, "prompt")
        # the image's stored prompt is checked here too, before the request joins a batch or becomes a job: one
        # request's bad input must fail that request alone, never the others batched with it
        reads = [method_class(get_space(n).method).capabilities for n in names]
        if any(c.needs_prompt or c.uses_prompt for c in reads):
            check_prompt(None if prompt else prompt_of(query), f"{name}: its stored prompt")
        for n in names:  # a method that cannot answer without a prompt is told so now, not by a failed job
            if method_class(get_space(n).method).capabilities.needs_prompt and not (prompt or prompt_of(query)):
                raise AttributionError(
                    f"space {n!r} needs the prompt the image was generated from: send the form field prompt "
                    "(PNG images made by the demo model carry it in their metadata)"
                )
        results, jobs = [], []
        try:
            for n in names:
                if state.is_slow(n):
                    job = state.start_job(n, query, k, name, prompt)
                    jobs.append({"id": job.id, "space": n, "status": job.status, "url": f"/v1/jobs/{job.id}"})
                else:
                    results.append(state.public(n, await state.attribute_now(n, query, k, name, prompt)))
        except QueueFullError:
            raise HTTPException(503, "busy: too many requests waiting; retry shortly", {"Retry-After": "1"}) from None
        except JobsFullError:
            busy = "busy: too many unlearning jobs unfinished; retry later"
            raise HTTPException(503, busy, {"Retry-After": "10"}) from None
        except TimeoutError:
            raise HTTPException(504, f"no answer within {config.timeout_s:g} s; retry, or ask for fewer") from None
        note = training_set_note([get_space(n) for n in names])
        body = {"results": results, "jobs": jobs, **({"note": note} if note else {})}
        return JSONResponse(body, status_code=202 if jobs else 200)

    @app.get("/v1/jobs/{job_id}", summary="an unlearning job: progress, then its result")
    async def job(job_id: str) -> dict:
        found = state.jobs.get(job_id)
        if found is None:
            raise HTTPException(404, f"no job {job_id!r} (finished jobs are kept until {config.max_jobs} newer exist)")
        return found.to_dict()

    @app.delete("/v1/jobs/{job_id}", summary="cancel a job (finished work is kept)")
    async def cancel_job(job_id: str) -> dict:
        found = state.jobs.get(job_id)
        if found is None:
            raise HTTPException(404, f"no job {job_id!r}")
        found.cancel.set()
        return found.to_dict()

    @app.get(
        "/v1/images/{space}/{row}",
        summary="a training image's thumbnail (JPEG)",
        response_class=Response,
        responses={200: {"content": {"image/jpeg": {}}}},
    )
    async def training_image(space: str, row: int, size: Annotated[int, Query(ge=16, le=1024)] = 256) -> Response:
        loop = asyncio.get_running_loop()
        data = await loop.run_in_executor(state.model_thread, _thumbnail, state, space, row, size)
        return Response(data, media_type="image/jpeg", headers={"Cache-Control": "max-age=86400"})

    app.add_middleware(
        ServiceMiddleware, key=config.key(), max_body=int(config.max_upload_mb * 2**20), metrics=state.metrics
    )
    return app


async def _query_image(state: ServiceState, image: UploadFile | None, image_id: str | None) -> tuple[Image.Image, str]:
    if (image is None) == (image_id is None):
        raise AttributionError("send exactly one of: image (a file upload) or image_id (SPACE/ROW)")
    if image is not None:
        data = await image.read()
        name = image.filename or "upload"
        try:  # decoded off the event loop: a large upload must not stall /healthz and every other request
            return await asyncio.to_thread(load_rgb, data, name, max_side=QUERY_MAX_SIDE), name
        finally:
            release_memory()
    space, _, row = image_id.rpartition("/")
    if not space or not row.isdigit():
        raise AttributionError(f"image_id {image_id!r}: expected SPACE/ROW, e.g. demo_pixel/12")
    loop = asyncio.get_running_loop()
    path = await loop.run_in_executor(state.model_thread, _stored_path, state, space, int(row))
    return await asyncio.to_thread(load_rgb, path, max_side=QUERY_MAX_SIDE), image_id


def _stored_path(state: ServiceState, space: str, row: int):
    try:
        return state.training_image(get_space(space).name, row)
    except IndexError:
        raise HTTPException(404, f"space {space!r} has no training image {row}") from None


def _thumbnail(state: ServiceState, space: str, row: int, size: int) -> bytes:
    image = thumbnail(_stored_path(state, space, row), size)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=90)
    return buf.getvalue()
