"""Settings of ``attribute serve`` (the CLI's flags are generated from these fields)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from ..core.config import option
from ..core.constants import DEFAULT_DEVICE, DEVICE_HELP
from ..core.errors import AttributionError


@dataclass(frozen=True)
class ServiceConfig:
    host: str = option("127.0.0.1", "address to bind (anything but loopback needs --api-key or --api-key-file)")
    port: int = option(8000, "port to bind")
    api_key: str = option("", "a key every request must send (header X-API-Key or Authorization: Bearer)")
    api_key_file: str = option("", "read the key from this file (first line) instead of the command line")
    spaces: tuple[str, ...] = option(
        (), "spaces to load at start (default: each space is loaded on first use)", flag="--space"
    )
    max_upload_mb: float = option(20.0, "largest accepted request body, in MB (413 beyond)")
    queue_size: int = option(64, "feature-space requests waiting or running at once (503 beyond)")
    timeout_s: float = option(30.0, "per-request time limit of feature-space requests (504 beyond)")
    batch_window_ms: float = option(5.0, "how long a feature-space request waits for others to share its batch")
    max_batch: int = option(32, "most queries in one embedding batch")
    micro_batching: bool = option(True, "batch concurrent feature-space requests into one embedding pass")
    max_jobs: int = option(32, "unlearning jobs kept (queued, running or finished; 503 when all are unfinished)")
    device: str = option(DEFAULT_DEVICE, DEVICE_HELP)

    def key(self) -> str:
        """The API key in force ("" when none)."""
        if self.api_key_file:
            try:
                lines = Path(self.api_key_file).read_text().splitlines()
            except OSError as exc:
                raise AttributionError(f"{self.api_key_file}: cannot read the API key file ({exc.strerror})") from None
            if not lines or not lines[0].strip():
                raise AttributionError(f"{self.api_key_file}: the API key file is empty")
            return lines[0].strip()
        return self.api_key

    def check_bind(self) -> None:
        """Refuse a non-loopback bind without a key."""
        if not is_loopback(self.host) and not self.key():
            raise AttributionError(
                f"refusing to serve on {self.host} without an API key: pass --api-key KEY or --api-key-file FILE "
                "(or bind to 127.0.0.1)"
            )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
