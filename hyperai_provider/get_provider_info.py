"""Provider registration, read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any


def _option(description: str, example: str | None = None) -> dict[str, Any]:
    return {
        "description": description,
        "version_added": "0.1.0",
        "type": "string",
        "example": example,
        "default": None,
    }


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": "hyperai-provider",
        "name": "HyperAI",
        "description": "HyperAI Gears: executions in Docker containers with saved working directories, "
        "datasets, continuation and pipelines.",
        "versions": ["0.1.0"],
        "integrations": [
            {
                "integration-name": "HyperAI",
                "external-doc-url": "https://hyperai.example/docs",
                "tags": ["software"],
            }
        ],
        "operators": [{"integration-name": "HyperAI", "python-modules": ["hyperai_provider.operators"]}],
        "hooks": [{"integration-name": "HyperAI", "python-modules": ["hyperai_provider.hooks.hyperai"]}],
        "triggers": [
            {"integration-name": "HyperAI", "python-modules": ["hyperai_provider.triggers.workspace"]}
        ],
        "extra-links": ["hyperai_provider.links.JupyterLabLink", "hyperai_provider.links.ExecutionLink"],
        "plugins": [{"name": "hyperai", "plugin-class": "hyperai_provider.plugins.HyperAIPlugin"}],
        "connection-types": [
            {
                "connection-type": "hyperai",
                "hook-class-name": "hyperai_provider.hooks.hyperai.HyperAIHook",
                "hook-name": "HyperAI",
            }
        ],
        "config": {
            "hyperai": {
                "description": "HyperAI Gears provider.",
                "options": {
                    "storage_root": _option(
                        "Folder holding working directories, datasets and the SQLite store "
                        "(default: $AIRFLOW_HOME/hyperai; HYPERAI_STORAGE_ROOT overrides).",
                        "/srv/hyperai",
                    ),
                    "store_url": _option(
                        "SQLAlchemy URL of the Gear store (default: SQLite file in the storage root).",
                        "postgresql://user:pass@db/hyperai",
                    ),
                },
            }
        },
    }
