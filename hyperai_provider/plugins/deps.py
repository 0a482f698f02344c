"""Request dependencies: the Airflow user (the configured auth manager) and the visibility layer as that user.

Airflow's own roles count here, and only here: the caller's read-only grants are asked of Airflow's auth
manager (an admin reads every gear; whoever may see a DAG reads what it ran) and handed to the core's
``Access``, which stays free of Airflow. Changes stay with the gear's owner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request

from hyperai_provider.core.access import NO_GRANTS, Access, ReadGrants
from hyperai_provider.core.datasets import Datasets
from hyperai_provider.core.gears import GearService
from hyperai_provider.core.lifecycle import Lifecycle

ADMIN_ROLES = frozenset({"admin"})
"""Role names (case-insensitive) that make an Airflow admin: SimpleAuthManager's ``admin``, FAB's ``Admin``."""


async def airflow_user_name(request: Request) -> str:
    """Resolve the caller exactly as Airflow's core API does (JWT bearer header, else the session cookie):
    401 without credentials, 403 for an invalid token. The user object is kept for ``read_grants``."""
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    credentials = await bearer_scheme(request)
    user = await get_user(request, None, credentials)
    request.state.hyperai_airflow_user = user
    return user.get_name()


def is_airflow_admin(user: Any) -> bool:
    """Whether Airflow's auth manager made ``user`` an admin: SimpleAuthManager's one ``role`` (viewer,
    user, op, admin; ``simple_auth_manager_all_admins`` logs everyone in as admin), or FAB's ``roles``."""
    role = getattr(user, "role", None)
    roles = [role] if isinstance(role, str) else list(getattr(user, "roles", None) or [])
    return any(str(getattr(r, "name", r)).lower() in ADMIN_ROLES for r in roles)


def airflow_read_grants(user: Any) -> ReadGrants:
    """What Airflow lets ``user`` read: every gear for an admin, else the executions of the DAGs its auth
    manager lets them see (``get_authorized_dag_ids``: roles, per-DAG permissions and teams), asked once
    per request and only when a gear the caller neither owns nor sees as public is looked at."""
    if is_airflow_admin(user):
        return ReadGrants(everything=True)
    readable: set[str] | None = None

    def dag(dag_id: str) -> bool:
        nonlocal readable
        if readable is None:
            from airflow.api_fastapi.app import get_auth_manager

            readable = set(get_auth_manager().get_authorized_dag_ids(user=user, method="GET"))
        return dag_id in readable

    return ReadGrants(dag=dag)


def read_grants(request: Request, _name: Annotated[str, Depends(airflow_user_name)]) -> ReadGrants:
    """The caller's read-only grants from Airflow; none when the caller was named some other way."""
    user = getattr(request.state, "hyperai_airflow_user", None)
    return NO_GRANTS if user is None else airflow_read_grants(user)


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
    def admin(self) -> bool:
        """An Airflow admin: reads every gear, changes only their own."""
        return self.access.grants.everything

    @property
    def datasets(self) -> Datasets:
        """Dataset operations as the caller (never as the api-server's process user)."""
        return self.service.datasets_for(self.user)

    @property
    def lifecycle(self) -> Lifecycle:
        return self.service.lifecycle_for(self.user)


def caller(
    user: Annotated[str, Depends(airflow_user_name)],
    grants: Annotated[ReadGrants, Depends(read_grants)],
    service: Annotated[GearService, Depends(gear_service)],
) -> Caller:
    return Caller(user, service, Access(service.store, user, grants))


CallerDep = Annotated[Caller, Depends(caller)]
