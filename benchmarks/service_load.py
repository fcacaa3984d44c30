"""Load test of the attribution service: C concurrent clients for T seconds against `attribute serve` on loopback,
with micro-batching on and off in the same run.

Reports errors, p50/p95 latency, throughput, and the server's RSS after warm-up and at the end (growth means a
leak). Each client posts the demo's example queries in turn to one demo feature space.

    python benchmarks/service_load.py [--clients 20] [--seconds 60] [--space demo_efficientnet_lite0_tuned]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run_clients(url: str, space: str, queries: list[bytes], clients: int, seconds: float, pid: int) -> dict:
    latencies: list[float] = []
    errors: dict[int | str, int] = {}
    rss: list[tuple[float, float]] = []
    stop = time.perf_counter() + seconds

    async def client(i: int, c: httpx.AsyncClient) -> None:
        n = i
        while time.perf_counter() < stop:
            q = queries[n % len(queries)]
            n += 1
            t0 = time.perf_counter()
            try:
                r = await c.post(
                    "/v1/attribute", data={"space": space, "k": "10"}, files={"image": ("q.jpg", q)}, timeout=120
                )
                code: int | str = r.status_code
            except httpx.HTTPError as exc:
                code = type(exc).__name__
            if code == 200:
                latencies.append(time.perf_counter() - t0)
            else:
                errors[code] = errors.get(code, 0) + 1

    async def watch() -> None:
        start = time.perf_counter()
        while time.perf_counter() < stop:
            rss.append((time.perf_counter() - start, rss_mb(pid)))
            await asyncio.sleep(1)

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits) as c:
        await asyncio.gather(watch(), *[client(i, c) for i in range(clients)])
    lat = np.asarray(latencies) * 1000
    warm = [m for t, m in rss if t >= seconds / 4]
    return {
        "requests": len(latencies),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "p50_ms": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "p95_ms": float(np.percentile(lat, 95)) if len(lat) else float("nan"),
        "per_s": len(latencies) / seconds,
        "rss_warm_mb": warm[0] if warm else float("nan"),
        "rss_end_mb": rss[-1][1] if rss else float("nan"),
    }


def serve(port: int, batching: bool, space: str) -> subprocess.Popen:
    flag = "--micro-batching" if batching else "--no-micro-batching"
    return subprocess.Popen(
        [sys.executable, "-m", "attribution_core", "-q", "serve", "--port", str(port), "--space", space, flag],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def wait_healthy(url: str, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/v1/spaces", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.5)
    raise SystemExit(f"{url}: the service did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--space", default="demo_efficientnet_lite0_tuned")
    args = parser.parse_args()
    from attribution_core.demo import EXAMPLE_QUERIES, build_demo, demo_dir

    build_demo(progress=False)
    queries = [(demo_dir() / q).read_bytes() for q in EXAMPLE_QUERIES]
    rows = []
    for batching in (False, True):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        proc = serve(port, batching, args.space)
        try:
            wait_healthy(url)
            row = asyncio.run(run_clients(url, args.space, queries, args.clients, args.seconds, proc.pid))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        rows.append(("on" if batching else "off", row))
    print(
        f"\n{args.clients} clients x {args.seconds:.0f} s against {args.space} on {platform.node()} "
        f"({os.cpu_count()} cores)\n"
    )
    print(
        "| micro-batching | requests | errors | p50 ms | p95 ms | requests/s | RSS after warm-up MB | RSS at end MB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows:
        print(
            f"| {name} | {r['requests']} | {r['errors']} {r['error_kinds'] or ''} | {r['p50_ms']:.0f} | "
            f"{r['p95_ms']:.0f} | {r['per_s']:.1f} | {r['rss_warm_mb']:.0f} | {r['rss_end_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()
