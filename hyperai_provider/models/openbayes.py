"""The ``openbayes.yaml`` file as openbayes-cli 0.28 reads and writes it (``bayes gear init``), as models.

Only the shape and the rules of the file live here; what it means for an execution (bindings, secrets,
continuation) is :mod:`hyperai_provider.core.project`. Every model rejects unknown keys; the loader names
the key a misspelt one probably meant before these models see it.

``hyper_tuning`` follows HyperAI's documented rules (the file's section is accepted even while studies do
not run here): ``max_job_count`` 0 (off) to 100; once it is above 0 the metric, the goal (``MAXIMIZE`` /
``MINIMIZE``), the algorithm (``Grid`` / ``Random`` / ``Bayesian``) and at least one parameter spec are
required, and ``Grid`` takes ``DISCRETE`` and ``CATEGORICAL`` specs only.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from hyperai_provider.models.base import FrozenModel

Scalar = str | int | float | bool

MAX_JOB_COUNT = 100
"""HyperAI runs at most 100 trials per study."""


def _normalise_choice(value: object, choices: list[str]) -> object:
    """``maximize`` -> ``MAXIMIZE``, ``grid`` -> ``Grid``: HyperAI's spelling, whatever the case written."""
    if isinstance(value, str):
        for choice in choices:
            if value.strip().lower() == choice.lower():
                return choice
    return value


class DataBinding(FrozenModel):
    """One ``data_bindings`` entry: ``{data: mnist/1, path: /input0, type: ro}`` (``name`` may replace
    ``data``; openbayes-cli prefers ``name`` when both are given)."""

    data: str | None = Field(default=None, description="[user/]DATASET/VERSION, or GEAR/N/output.")
    name: str | None = Field(default=None, description="Same as data; wins when both are given.")
    path: str = Field(min_length=1, description="/input0 ... /input4, or /output (continue).")
    type: Literal["ro", "rw"] = Field(default="ro", description="ro (read-only) or rw (read-write).")

    @field_validator("data", "name", "path", mode="before")
    @classmethod
    def _text(cls, value: object) -> object:
        return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    @field_validator("type", mode="before")
    @classmethod
    def _binding_type(cls, value: object) -> object:
        """``ro`` / ``rw``, also as openbayes-cli spells them for the server (``READ_ONLY``, ``READ_WRITE``)."""
        if value is None:
            return "ro"
        if isinstance(value, str):
            spelt = value.strip().lower()
            return {"read_only": "ro", "read_write": "rw"}.get(spelt, spelt)
        return value

    @model_validator(mode="after")
    def _source_given(self) -> DataBinding:
        if not (self.name or self.data):
            raise ValueError("needs 'data' (or 'name'): what to bind, e.g. {data: mnist/1, path: /input0}")
        return self

    @property
    def source(self) -> str:
        return str(self.name or self.data)


class DataBindingGroups(FrozenModel):
    """``data_bindings`` written as a mapping, as openbayes-cli also reads it."""

    data_bindings: list[DataBinding] = Field(default_factory=list)
    data_binding: list[DataBinding] = Field(default_factory=list)
    bindings: list[str] = Field(default_factory=list)
    binding: list[str] = Field(default_factory=list)


class SecretParameter(FrozenModel):
    """A secret parameter: ``{is_secret: true, source: env, env: HF_TOKEN}`` reads the variable from the
    submitting environment when the execution is submitted; ``{is_secret: true, value: ...}`` (the older
    form, plain text in the file) is accepted as openbayes-cli accepts it. The container gets it as an
    environment variable named after the parameter, and nothing else ever holds the value."""

    is_secret: Literal[True] = True
    source: Literal["env"] | None = Field(default=None, description="Only 'env' exists.")
    env: str | None = Field(default=None, min_length=1, description="The environment variable to read.")
    value: Scalar | None = Field(default=None, repr=False, description="Plain-text secret (older form).")

    @model_validator(mode="after")
    def _one_source(self) -> SecretParameter:
        if self.source is not None and self.value is not None:
            raise ValueError("gives both 'source' and 'value': keep source: env (and env: NAME), drop value")
        if self.source == "env" and not self.env:
            raise ValueError(
                "has source: env but no 'env': name the environment variable, e.g. env: HF_TOKEN"
            )
        if self.source is None and self.value is None:
            raise ValueError(
                "is secret but says nowhere where its value comes from: add source: env and env: NAME"
            )
        if self.env is not None and self.source is None:
            raise ValueError("names 'env' without source: env: add source: env")
        return self


class ParameterType(str, Enum):
    DOUBLE = "DOUBLE"
    INTEGER = "INTEGER"
    DISCRETE = "DISCRETE"
    CATEGORICAL = "CATEGORICAL"


class ScaleType(str, Enum):
    UNIT_LINEAR_SCALE = "UNIT_LINEAR_SCALE"
    UNIT_LOG_SCALE = "UNIT_LOG_SCALE"


class Goal(str, Enum):
    MAXIMIZE = "MAXIMIZE"
    MINIMIZE = "MINIMIZE"


class Algorithm(str, Enum):
    GRID = "Grid"
    RANDOM = "Random"
    BAYESIAN = "Bayesian"


_RANGE_FIELDS = ("min_value", "max_value", "scale_type")
_FIELDS_OF_TYPE = {
    ParameterType.DOUBLE: _RANGE_FIELDS,
    ParameterType.INTEGER: _RANGE_FIELDS,
    ParameterType.DISCRETE: ("discrete_values",),
    ParameterType.CATEGORICAL: ("categorical_values",),
}


class ParameterSpec(FrozenModel):
    """One ``hyper_tuning.parameter_specs`` entry: a range (DOUBLE, INTEGER) or a list of values."""

    name: str = Field(min_length=1)
    type: ParameterType
    min_value: float | None = None
    max_value: float | None = None
    scale_type: ScaleType | None = Field(default=None, description="Default UNIT_LINEAR_SCALE for ranges.")
    discrete_values: list[float] | None = None
    categorical_values: list[str] | None = None

    @field_validator("type", mode="before")
    @classmethod
    def _type(cls, value: object) -> object:
        return _normalise_choice(value, [member.value for member in ParameterType])

    @field_validator("scale_type", mode="before")
    @classmethod
    def _scale(cls, value: object) -> object:
        return _normalise_choice(value, [member.value for member in ScaleType])

    @field_validator("categorical_values", mode="before")
    @classmethod
    def _categories_as_text(cls, value: object) -> object:
        if isinstance(value, list):
            return [
                str(item) if isinstance(item, (int, float)) and not isinstance(item, bool) else item
                for item in value
            ]
        return value

    @model_validator(mode="after")
    def _fits_its_type(self) -> ParameterSpec:
        allowed = _FIELDS_OF_TYPE[self.type]
        stray = [
            name
            for name in ("min_value", "max_value", "scale_type", "discrete_values", "categorical_values")
            if name not in allowed and getattr(self, name) is not None
        ]
        if stray:
            raise ValueError(
                f"{self.name!r} is {self.type.value}: {', '.join(stray)} does not apply to it "
                f"(it takes {', '.join(allowed)})"
            )
        if self.type in (ParameterType.DOUBLE, ParameterType.INTEGER):
            self._check_range()
        elif self.type is ParameterType.DISCRETE and not self.discrete_values:
            raise ValueError(f"{self.name!r} is DISCRETE: list its values in discrete_values, e.g. [1, 2, 4]")
        elif self.type is ParameterType.CATEGORICAL and not self.categorical_values:
            raise ValueError(
                f"{self.name!r} is CATEGORICAL: list its values in categorical_values, e.g. [A, B]"
            )
        return self

    def _check_range(self) -> None:
        low, high = self.min_value, self.max_value
        if low is None or high is None:
            raise ValueError(f"{self.name!r} is {self.type.value}: give both min_value and max_value")
        if low > high:
            raise ValueError(f"{self.name!r}: min_value {low:g} is greater than max_value {high:g}")
        if self.type is ParameterType.INTEGER and not (float(low).is_integer() and float(high).is_integer()):
            raise ValueError(f"{self.name!r} is INTEGER: min_value and max_value must be whole numbers")
        if self.scale_type is ScaleType.UNIT_LOG_SCALE and low <= 0:
            raise ValueError(f"{self.name!r} uses UNIT_LOG_SCALE: min_value must be above 0 (it is {low:g})")
        if not (math.isfinite(low) and math.isfinite(high)):
            raise ValueError(f"{self.name!r}: min_value and max_value must be finite numbers")

    @property
    def scale(self) -> ScaleType:
        return self.scale_type or ScaleType.UNIT_LINEAR_SCALE


class HyperTuning(FrozenModel):
    """The ``hyper_tuning`` section. ``max_job_count: 0`` (what ``bayes gear init`` writes) means no study;
    then the other keys may stay empty as the template leaves them."""

    max_job_count: int = Field(default=0, ge=0, le=MAX_JOB_COUNT, description="Trials; 0: no study.")
    parallel_count: int = Field(default=1, ge=1, description="Trials running at once.")
    hyperparameter_metric: str = Field(default="", description="The metric trials report (log_metric).")
    goal: Goal | None = None
    algorithm: Algorithm | None = None
    parameter_specs: list[ParameterSpec] = Field(default_factory=list)
    side_metrics: list[str] = Field(default_factory=list)

    @field_validator("goal", mode="before")
    @classmethod
    def _goal(cls, value: object) -> object:
        return None if value in ("", None) else _normalise_choice(value, [member.value for member in Goal])

    @field_validator("algorithm", mode="before")
    @classmethod
    def _algorithm(cls, value: object) -> object:
        return (
            None if value in ("", None) else _normalise_choice(value, [member.value for member in Algorithm])
        )

    @field_validator("hyperparameter_metric", mode="before")
    @classmethod
    def _metric(cls, value: object) -> object:
        return "" if value is None else value

    @field_validator("parameter_specs", "side_metrics", mode="before")
    @classmethod
    def _empty_list(cls, value: object) -> object:
        return [] if value is None else value

    @model_validator(mode="after")
    def _complete_when_on(self) -> HyperTuning:
        names = [spec.name for spec in self.parameter_specs]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"parameter_specs names {', '.join(twice)} more than once")
        if not self.enabled:
            return self
        missing = [
            key
            for key, value in (
                ("hyperparameter_metric", self.hyperparameter_metric.strip()),
                ("goal", self.goal),
                ("algorithm", self.algorithm),
                ("parameter_specs", self.parameter_specs),
            )
            if not value
        ]
        if missing:
            raise ValueError(
                f"max_job_count is {self.max_job_count}, so a study needs {', '.join(missing)} "
                "(goal: MAXIMIZE or MINIMIZE; algorithm: Grid, Random or Bayesian); "
                "or set max_job_count: 0 for no study"
            )
        if self.algorithm is Algorithm.GRID:
            ranged = [
                spec.name
                for spec in self.parameter_specs
                if spec.type in (ParameterType.DOUBLE, ParameterType.INTEGER)
            ]
            if ranged:
                raise ValueError(
                    f"Grid takes DISCRETE and CATEGORICAL specs only; {', '.join(ranged)} is a range: "
                    "list its values as DISCRETE, or use Random or Bayesian"
                )
        return self

    @property
    def enabled(self) -> bool:
        return self.max_job_count > 0


class OpenBayesFile(FrozenModel):
    """The whole file. Every key is optional here (``hyperai run`` has defaults for them); ``node`` above 1
    is refused by the loader until multi-node executions exist."""

    name: str | None = Field(default=None, description="Gear name (not an openbayes-cli key).")
    description: str | None = None
    resource: str | None = Field(default=None, description="Compute type.")
    env: str | None = Field(default=None, description="Runtime image (HyperAI runtime names map to ours).")
    command: str | None = None
    node: int = Field(default=1, ge=0, description="Nodes; 0 and 1 both mean one.")
    parameters: dict[str, Any] = Field(default_factory=dict)
    data_bindings: DataBindingGroups | None = Field(
        default=None, description="A list of entries, or openbayes-cli's mapping form (read as its groups)."
    )
    bindings: list[str] | None = None
    hyper_tuning: HyperTuning | None = None

    @field_validator("name", "description", "resource", "env", "command", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """The template writes ``command: ""``: an empty value is an unset one."""
        if isinstance(value, str) and not value.strip():
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("parameters", mode="before")
    @classmethod
    def _no_parameters(cls, value: object) -> object:
        return {} if value is None else value

    @field_validator("data_bindings", mode="before")
    @classmethod
    def _entries_as_group(cls, value: object) -> object:
        return {"data_bindings": value} if isinstance(value, list) else value

    @field_validator("bindings", mode="before")
    @classmethod
    def _short_forms_as_text(cls, value: object) -> object:
        return [str(item) for item in value] if isinstance(value, list) else value
