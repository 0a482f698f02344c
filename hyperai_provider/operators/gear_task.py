"""``GearTaskOperator``: one Task-mode execution per task try."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from airflow.sdk import BaseOperator, BaseOperatorLink

from hyperai_provider.exceptions import ConfigurationError
from hyperai_provider.links import EXECUTION_ID_KEY, ExecutionLink
from hyperai_provider.models import AirflowContext, ExecutionMode, ExecutionRecord, WorkdirSource
from hyperai_provider.models.sources import parse_source
from hyperai_provider.models.spec import ExecutionSpec, build_spec

if TYPE_CHECKING:
    from airflow.sdk import Context

    from hyperai_provider.core.gears import GearService


class GearTaskOperator(BaseOperator):
    """Run ``command`` in a Gear execution: a Docker container sized by ``compute_type``.

    The code is copied into the execution's working directory ``/hyperai/home`` (also ``/output``),
    which is saved when the container ends. The task returns a working-directory reference (XCom)
    that a downstream task can bind as an input: ``inputs={"input0": train.output}``.

    :param command: shell string (run by ``/bin/sh -c`` in ``/hyperai/home``) or argv list.
    :param image: image catalog name (``python``, ``jupyter``, ...) or any image reference.
    :param compute_type: compute catalog name (``cpu``, ``t4``, ...).
    :param gear: gear that owns the execution; default: the DAG id.
    :param code: folder, file or ``.ipynb`` to copy into ``/hyperai/home`` (relative to the DAG file's
        folder); or an execution's working directory to take the code from (promotion): an execution id
        ``'gear/3'``, ``'gear/3:sub/path'``, or an upstream Gear task's output. A notebook is exported to
        a ``.py`` script; with no ``command``, the one uploaded notebook's script runs.
    :param environment: extra environment variables.
    :param parameters: flat mapping passed as ``--key=value`` and written to ``hyperai_params.json``.
    :param secret_parameters: secret parameters, given to the container as environment variables only
        (never on the command line, in the record, XCom, the params files or a log line):
        ``{"HF_TOKEN": "HF_TOKEN"}`` names the worker's environment variable to read when the task runs
        (or openbayes.yaml's ``{is_secret: true, source: env, env: NAME}``); a missing one fails the task
        before anything starts.
    :param inputs: ``{"input0": ...}`` bindings (dataset versions or upstream working directories).
    :param continue_from: continue from an execution's working directory (Continue Execution): an
        execution id ``'gear/3'`` or ``'latest'`` (the gear's latest closed execution). A DAG run whose conf
        or params carry ``continue_from`` (a string, or ``{task_id: ...}``) overrides it. The child's
        ``/hyperai/home`` is the parent's working directory, copy-on-write; it rebinds the parent's inputs
        and code unless this task gives its own.
    :param on_retry: ``continue`` (default): a retried or cleared task continues from its previous try's
        working directory; ``restart``: every try starts fresh.
    :param code_conflict: on continuation, when uploaded code has a file the working directory already
        has: ``keep`` (default, HyperAI's behaviour, each kept file logged), ``overwrite`` or ``error``.
    :param pull: ``missing`` (default), ``never`` or ``always``.
    :param hyperai_conn_id: the ``hyperai`` connection (missing: local defaults).
    """

    operator_extra_links: Sequence[BaseOperatorLink] = (ExecutionLink(),)
    template_fields: Sequence[str] = (
        "command",
        "image",
        "compute_type",
        "gear",
        "code",
        "environment",
        "parameters",
        "inputs",
        "continue_from",
    )
    mode: ExecutionMode = ExecutionMode.TASK
    template_ext: Sequence[str] = ()  # a command ending in ".sh" is a command, not a template file
    ui_color = "#d6eaff"

    def __init__(
        self,
        *,
        command: str | list[str] | None = None,
        image: str = "python",
        compute_type: str = "cpu",
        gear: str | None = None,
        code: str | Path | dict[str, Any] | None = None,
        environment: dict[str, str] | None = None,
        parameters: dict[str, Any] | None = None,
        secret_parameters: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        code_conflict: Literal["keep", "overwrite", "error"] = "keep",
        continue_from: str | None = None,
        on_retry: Literal["continue", "restart"] = "continue",
        pull: Literal["missing", "never", "always"] = "missing",
        hyperai_conn_id: str = "hyperai_default",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if on_retry not in ("continue", "restart"):
            raise ConfigurationError(
                f"on_retry={on_retry!r} is not a choice.", "Use 'continue' (default) or 'restart'."
            )
        self.continue_from = continue_from
        self.on_retry = on_retry
        self.command = command
        self.image = image
        self.compute_type = compute_type
        self.gear = gear
        self.code: Any = str(code) if isinstance(code, Path) else code  # may be an XComArg until rendered
        self.environment = environment or {}
        self.parameters = parameters or {}
        self.secret_parameters = dict(secret_parameters or {})  # where values come from, never values
        self.inputs = inputs or {}
        self.code_conflict = code_conflict
        self.pull = pull
        self.hyperai_conn_id = hyperai_conn_id
        self._service: GearService | None = None
        self._execution_id: str | None = None

    @classmethod
    def from_project(
        cls, path: str | Path, *, ignore_hyper_tuning: bool = False, **kwargs: Any
    ) -> GearTaskOperator:
        """A task that runs a HyperAI/OpenBayes project folder (``openbayes.yaml``) as it is: its
        ``resource``, ``env``, ``command``, ``parameters`` (secret ones read from the worker's environment
        when the task runs) and bindings; ``kwargs`` override them. A file asking for a HyperTuning study
        is refused unless ``ignore_hyper_tuning`` (then one execution runs with the file's parameters)."""
        from hyperai_provider.core.project import load_project

        folder = Path(path).expanduser()
        if not folder.is_absolute():
            folder = _caller_folder() / folder
        project = load_project(folder)
        if not ignore_hyper_tuning:
            project.refuse_study("GearTaskOperator.from_project(..., ignore_hyper_tuning=True)")
        arguments = project.operator_arguments()
        arguments.update(kwargs)
        return cls(**arguments)

    @property
    def service(self) -> GearService:
        if self._service is None:
            from hyperai_provider.hooks.hyperai import HyperAIHook

            self._service = HyperAIHook(self.hyperai_conn_id).service
        return self._service

    def _code_fields(self) -> dict[str, Any]:
        """``code`` as a path to upload, or as ``code_from`` (an execution's working directory)."""
        if self.code is None or self.code == "":
            return {}
        path = self._code_path()
        if isinstance(self.code, str) and path is not None and path.exists():
            return {"code": path}
        try:
            source = parse_source(self.code)
        except ValueError:
            return {"code": path}  # not a reference either: the plan says the path does not exist
        if not isinstance(source, WorkdirSource):
            raise ConfigurationError(
                f"code={self.code!r} names a dataset; code comes from a folder, a file or an execution.",
                "Bind datasets with inputs={'input0': ...} instead.",
            )
        reference = source.execution_id + (f":{source.sub_path}" if source.sub_path else "")
        return {"code_from": reference}

    def _code_path(self) -> Path | None:
        if not isinstance(self.code, str):
            return None
        path = Path(self.code).expanduser()
        if not path.is_absolute():
            fileloc = getattr(self.dag, "fileloc", None) if self.has_dag() else None
            base = Path(fileloc).parent if fileloc else Path.cwd()
            path = base / path
        return path

    def build_spec(self, context: Context) -> ExecutionSpec:
        """The execution request for this try (validated: bad input fails here, before Docker)."""
        ti = context["ti"]
        airflow = AirflowContext(
            dag_id=ti.dag_id,
            task_id=ti.task_id,
            run_id=ti.run_id,
            try_number=ti.try_number,
            map_index=getattr(ti, "map_index", -1) if getattr(ti, "map_index", None) is not None else -1,
        )
        return build_spec(
            gear=self.gear or ti.dag_id,
            image=self.image,
            compute_type=self.compute_type,
            command=self.command,
            mode=self.mode,
            **self._code_fields(),
            environment=self.environment,
            parameters=self.parameters,
            secret_environment=self._secrets(),
            inputs=self.service.bindings_from(self.inputs),
            code_conflict=self.code_conflict,
            continue_from=self._continue_from(context, airflow, self.gear or ti.dag_id),
            pull=self.pull,
            airflow=airflow,
        )

    def _secrets(self) -> dict[str, str]:
        """Secret values from this worker's environment, read now (when the task runs), never at parse."""
        from hyperai_provider.core.project import resolve_secrets

        return resolve_secrets(self.secret_parameters)

    def _continue_from(self, context: Context, airflow: AirflowContext, gear: str) -> str | None:
        """This try's parent: the previous try (on_retry='continue'), else the DAG run's conf or params,
        else the ``continue_from`` argument."""
        if self.on_retry == "continue" and airflow.try_number > 1:
            previous = self.service.previous_try(gear, airflow)
            if previous is not None:
                self.log.info(
                    "Try %s continues from the previous try's execution %s", airflow.try_number, previous.id
                )
                return previous.id
        dag_run = context.get("dag_run")
        for source in (getattr(dag_run, "conf", None), context.get("params")):
            value = (source or {}).get("continue_from")
            if isinstance(value, dict):
                value = value.get(airflow.task_id)
            if value:
                return str(value)
        return self.continue_from or None

    def execute(self, context: Context) -> dict[str, Any]:
        spec = self.build_spec(context)
        record = self.service.run(spec, on_line=self.log.info, on_created=self._created(context))
        self.log.info(
            "Execution %s %s; working directory: %s",
            record.id,
            record.state.value,
            self.service.workdir(record),
        )
        metrics = self.service.store.metrics.last_values(record.id)
        if metrics:  # {key: last value} under its own key (the return value stays a bindable reference);
            context["ti"].xcom_push(key="metrics", value=metrics)  # none: no push (a round trip saved)
        return self.service.reference(record).model_dump(mode="json")

    def _created(self, context: Context) -> Callable[[ExecutionRecord], None]:
        """Called once the execution exists: remembered for ``on_kill``, pushed for the extra link."""

        def remember(record: ExecutionRecord) -> None:
            self._execution_id = record.id
            context["ti"].xcom_push(key=EXECUTION_ID_KEY, value=record.id)
            self.log.info(
                "Execution %s created (compute type %s, image %s)", record.id, record.compute.name, record.image
            )

        return remember

    def on_kill(self) -> None:
        if self._execution_id is not None:
            self.service.stop(self._execution_id, "task killed by Airflow")


def _caller_folder() -> Path:
    """The folder of the DAG file calling ``from_project`` (relative paths are relative to it)."""
    import inspect

    for frame in inspect.stack()[2:]:
        if not frame.filename.startswith(str(Path(__file__).parent)):
            return Path(frame.filename).parent
    return Path.cwd()
