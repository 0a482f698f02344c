"""Datasets and their versions; a version made from an execution's working directory."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel

from hyperai_provider.models import DatasetVersion, execution_id
from hyperai_provider.plugins import render
from hyperai_provider.plugins.deps import CallerDep
from hyperai_provider.plugins.routes import action_done, base

router = APIRouter(tags=["datasets"])


class DatasetOut(BaseModel):
    name: str
    owner: str
    description: str
    versions: list[DatasetVersion]


@router.get("/api/datasets")
def list_datasets(who: CallerDep) -> list[DatasetOut]:
    datasets = who.datasets
    return [
        DatasetOut(name=d.name, owner=d.owner, description=d.description, versions=datasets.versions(d.name))
        for d in datasets.all()
    ]


@router.post("/api/executions/{gear}/{number}/dataset-version")
def create_version(
    request: Request, gear: str, number: int, who: CallerDep, dataset: Annotated[str, Form()]
) -> Response:
    """A new version of ``dataset`` (created if needed) from the execution's working directory."""
    record = who.access.execution(execution_id(gear, number))
    datasets = who.datasets
    datasets.ensure(dataset)
    version = datasets.add_version_from_execution(dataset, record.id)
    return action_done(request, f"{dataset} v{version.version} from {record.id}", f"/datasets/{dataset}")


@router.get("/datasets", response_class=HTMLResponse)
def datasets_page(request: Request, who: CallerDep) -> str:
    home = base(request)
    rows = [
        [
            render.link(f"{home}/datasets/{d.name}", d.name),
            render.esc(d.owner),
            render.esc(d.description),
            str(len(d.versions)),
            render.size(sum(v.bytes for v in d.versions)),
        ]
        for d in list_datasets(who)
    ]
    body = render.table(["Dataset", "Owner", "Description", "Versions", "Storage"], rows, "datasets")
    return render.page(home, "Datasets", body)


@router.get("/datasets/{name}", response_class=HTMLResponse)
def dataset_page(request: Request, name: str, who: CallerDep) -> str:
    home = base(request)
    datasets = who.datasets
    found = datasets.get(name)
    rows = [
        [
            str(v.version),
            render.esc(v.source),
            str(v.files),
            render.size(v.bytes),
            render.esc(render.when(v.created_at)),
        ]
        for v in reversed(datasets.versions(name))
    ]
    body = f"<p>{render.esc(found.description)}</p>" + render.table(
        ["Version", "Source", "Files", "Size", "Created"], rows, "versions"
    )
    return render.page(home, f"Dataset {name}", body)
