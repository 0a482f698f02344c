"""The HyperAI Airflow plugin: a FastAPI app under ``/hyperai`` and a navigation entry in the Airflow UI.

Registered through ``plugins`` in get_provider_info. The app is built by a factory; settings, the store and
Airflow's auth manager are only touched when a request arrives.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from hyperai_provider.plugins.app import URL_PREFIX, create_app


class HyperAIPlugin(AirflowPlugin):
    """Gears, executions, working directories and datasets in the Airflow web UI."""

    name = "hyperai"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "HyperAI Gears"}]
    external_views = [
        {
            "name": "HyperAI Gears",
            "href": f"{URL_PREFIX}/",
            "destination": "nav",
            "category": "browse",
            "url_route": "hyperai",
        }
    ]
