"""Request dependencies: the Airflow user (the configured auth manager) and the visibility layer as that user."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from hyperai_provider.core.access import Access
from hyperai_provider.core.datasets import Datasets
from hyperai_provider.core.gears import GearService
from hyperai_provider.core.lifecycle import Lifecycle


async def airflow_user_name(request: Request) -> str:
    """Resolve the caller exactly as Airflow's core API does (JWT bearer header, else the session cookie):
    401 without credentials, 403 for an invalid token."""
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    credentials = await bearer_scheme(request)
    user = await get_user(request, None, credentials)
    return user.get_name()


def gear_service(request: Request) -> GearService:
    """One service per storage root and store, built on first use. Settings come from the same resolver as
    the tasks' (the ``hyperai_default`` connection, ``HYPERAI_*``, ``[hyperai]`` in airflow.cfg), read per
    request and never at import."""
    from hyperai_provider.hooks.hyperai import HyperAIHook

    settings = HyperAIHook().settings()
    services: dict[tuple[str, str], GearService] | None = getattr(request.app.state, "services", None)
    if services is None:
        services = request.app.state.services = {}
    key = (str(settings.storage_root), settings.resolved_store_url)
    if key not in services:
        services[key] = GearService(settings)
    return services[key]


@dataclass(frozen=True)
class Caller:
    """Who is asking, and what they may see."""

    user: str
    service: GearService
    access: Access

    @property
    def datasets(self) -> Datasets:
        """Dataset operations as the caller (never as the api-server's process user)."""
        return self.service.datasets_for(self.user)

    @property
    def lifecycle(self) -> Lifecycle:
        return self.service.lifecycle_for(self.user)


def caller(
    user: Annotated[str, Depends(airflow_user_name)],
    service: Annotated[GearService, Depends(gear_service)],
) -> Caller:
    return Caller(user, service, service.access(user))


CallerDep = Annotated[Caller, Depends(caller)]
