"""A small Python client of the attribution service (``attribute serve``), through httpx.

    from attribution_core.service.client import AttributionClient
    client = AttributionClient("http://127.0.0.1:8000")
    results = client.attribute("generated.png", spaces=["demo_efficientnet_lite0_tuned"], k=10)

Results are :class:`~attribution_core.attribute.interface.AttributionResult` objects, as the library returns them;
unlearning jobs are polled until done (``wait=True``) with their progress passed to ``on_progress``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import httpx
from PIL import Image

from ..attribute.interface import AttributionResult
from ..core.errors import AttributionError
from ..core.progress import CancelFlag, Progress, ProgressCallback, check_cancelled


class ServiceError(AttributionError):
    """The service refused a request (its one-line reason) or could not be reached."""


class AttributionClient:
    def __init__(self, url: str, api_key: str | None = None, timeout: float = 60.0):
        headers = {"X-API-Key": api_key} if api_key else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AttributionClient:
        return self

    def __exit__(self, *_) -> None:
        self.close()

    def _call(self, method: str, path: str, **kw) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kw)
        except httpx.HTTPError as exc:
            raise ServiceError(f"{self.url}: cannot reach the attribution service ({exc})") from None
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise ServiceError(f"{self.url}{path}: {response.status_code} {detail}")
        return response

    def health(self) -> bool:
        return self._call("GET", "/healthz").json().get("status") == "ok"

    def spaces(self) -> list[dict]:
        """Every space the service knows: name, label, method, ready, missing, loaded."""
        return self._call("GET", "/v1/spaces").json()["spaces"]

    def training_image(self, space: str, row: int, size: int = 256) -> bytes:
        """A training image's thumbnail (JPEG bytes)."""
        return self._call("GET", f"/v1/images/{space}/{row}", params={"size": size}).content

    def job(self, job_id: str) -> dict:
        return self._call("GET", f"/v1/jobs/{job_id}").json()

    def cancel(self, job_id: str) -> dict:
        return self._call("DELETE", f"/v1/jobs/{job_id}").json()

    def attribute(
        self,
        image: Path | str | bytes | Image.Image,
        spaces: Sequence[str] = (),
        methods: Sequence[str] = (),
        k: int = 10,
        prompt: str | None = None,
        name: str | None = None,
        wait: bool = True,
        on_progress: ProgressCallback | None = None,
        cancel: CancelFlag | None = None,
        poll_s: float = 0.5,
    ) -> list[AttributionResult]:
        """Attribute one image by each named space (and every ready space of each named method).

        With ``wait`` (default) unlearning jobs are polled until they finish; otherwise only the results that were
        answered at once are returned.
        """
        data, filename = _image_bytes(image, name)
        form = {"space": list(spaces), "method": list(methods), "k": str(k), **({"prompt": prompt} if prompt else {})}
        answer = self._call("POST", "/v1/attribute", data=form, files={"image": (filename, data)}).json()
        results = [AttributionResult.from_dict(r) for r in answer["results"]]
        for job in answer["jobs"] if wait else []:
            results.append(self.wait(job["id"], on_progress, cancel, poll_s))
        return results

    def wait(
        self,
        job_id: str,
        on_progress: ProgressCallback | None = None,
        cancel: CancelFlag | None = None,
        poll_s: float = 0.5,
    ) -> AttributionResult:
        """Poll a job until it is done; its result."""
        while True:
            if cancel is not None and cancel.is_set():
                self.cancel(job_id)
                check_cancelled(cancel)
            job = self.job(job_id)
            p = job["progress"]
            if on_progress is not None and p["stage"]:
                on_progress(Progress(p["stage"], p["done"], p["total"]))
            if job["status"] == "done":
                return AttributionResult.from_dict(job["result"])
            if job["status"] in ("failed", "cancelled"):
                raise ServiceError(f"job {job_id} {job['status']}: {job.get('error') or 'cancelled'}")
            time.sleep(poll_s)


def _image_bytes(image: Path | str | bytes | Image.Image, name: str | None) -> tuple[bytes, str]:
    if isinstance(image, bytes):
        return image, name or "upload.png"
    if isinstance(image, Image.Image):
        import io

        from PIL import PngImagePlugin

        pnginfo = PngImagePlugin.PngInfo()  # text chunks (a generated image's prompt record) travel with it
        for key, value in image.info.items():
            if isinstance(value, str):
                pnginfo.add_text(key, value)
        buf = io.BytesIO()
        image.save(buf, format="PNG", pnginfo=pnginfo)
        return buf.getvalue(), name or "upload.png"
    path = Path(image)
    try:
        return path.read_bytes(), name or path.name
    except OSError as exc:
        raise AttributionError(f"{path}: cannot read ({exc.strerror})") from None
