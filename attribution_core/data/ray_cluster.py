"""Joining a Ray cluster, or starting a local Ray instance, for the engines that run on Ray (extraction, labelling).

The workers get this process's ``ATTRIBUTION_*`` settings (spaces, plug-ins, project home, caches), so they find
what the driver finds.
"""

from __future__ import annotations

import os

from ..core.errors import AttributionError


def connect_ray(address: str | None, cpus: int) -> bool:
    """Join the cluster at ``address`` (``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``), or start a local instance
    with ``cpus`` CPUs; True when this call started Ray (and the caller must shut it down)."""
    import ray

    if ray.is_initialized():
        return False
    shared = {k: v for k, v in os.environ.items() if k.startswith("ATTRIBUTION_")}
    runtime_env = {"env_vars": shared} if shared else None
    try:
        if address:
            ray.init(address=address, log_to_driver=False, runtime_env=runtime_env)
        else:
            ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, runtime_env=runtime_env)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise AttributionError(f"cannot start or reach {where}: {str(exc).splitlines()[0]}") from None
    return True
