"""Checks of an ``openbayes.yaml`` before and while its models read it: every key against the keys its
level knows (a misspelt one is named with the key it probably meant, difflib), and pydantic's errors in the
file's own words (``hyper_tuning.parameter_specs[0]: ...``)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from hyperai_provider.exceptions import ConfigurationError
from hyperai_provider.models.openbayes import (
    DataBinding,
    DataBindingGroups,
    HyperTuning,
    OpenBayesFile,
    ParameterSpec,
)

MEANT = {
    "image": "env",
    "runtime": "env",
    "compute_type": "resource",
    "compute": "resource",
    "gpu": "resource",
}
"""Keys of other tools' files that mean one of ours (no spelling is close enough for difflib)."""


def check_all_keys(origin: str, data: Mapping[Any, Any]) -> None:
    """Every mapping of the file against the keys its level knows, before the models see it."""
    check_keys(origin, data, OpenBayesFile.model_fields, misplaced=HyperTuning.model_fields)
    bindings = data.get("data_bindings")
    if isinstance(bindings, dict):
        check_keys(f"{origin}: data_bindings", bindings, DataBindingGroups.model_fields)
        entries = [*_as_list(bindings.get("data_bindings")), *_as_list(bindings.get("data_binding"))]
    else:
        entries = _as_list(bindings)
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or "path" not in entry or not ({"data", "name"} & set(entry)):
            raise ConfigurationError(
                f"{origin}: each data_bindings entry needs 'data' and 'path' ('name' may replace 'data'); "
                f"entry {index} is {entry!r}.",
                "Example: {data: mnist/1, path: /input0, type: ro}.",
            )
        check_keys(f"{origin}: data_bindings[{index}]", entry, DataBinding.model_fields)
    tuning = data.get("hyper_tuning")
    if isinstance(tuning, dict):
        check_keys(f"{origin}: hyper_tuning", tuning, HyperTuning.model_fields)
        for index, spec in enumerate(_as_list(tuning.get("parameter_specs"))):
            if isinstance(spec, dict):
                check_keys(
                    f"{origin}: hyper_tuning.parameter_specs[{index}]", spec, ParameterSpec.model_fields
                )


def check_keys(
    where: str, mapping: Mapping[Any, Any], known: Iterable[str], misplaced: Iterable[str] = ()
) -> None:
    known, misplaced = sorted(known), set(misplaced)
    unknown = [str(key) for key in mapping if str(key) not in known]
    if not unknown:
        return
    problems = []
    for key in unknown:
        guess = difflib.get_close_matches(key, known, n=1, cutoff=0.6) or [
            meant for meant in [MEANT.get(key.lower())] if meant in known
        ]
        if guess:
            problems.append(f"{key} (did you mean {guess[0]}?)")
        elif key in misplaced:
            problems.append(f"{key} (it belongs under hyper_tuning)")
        else:
            problems.append(key)
    raise ConfigurationError(
        f"{where} has unknown key(s): {', '.join(problems)}.", f"Known keys here: {', '.join(known)}."
    )


def _as_list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def validate(where: str, model: type[Any], data: object) -> Any:
    """``model`` from ``data``; pydantic's errors as one ConfigurationError naming each place."""
    assert issubclass(model, BaseModel)
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems = [_problem(item) for item in error.errors()]
        raise ConfigurationError(
            f"{where}: " + "; ".join(problems) + ".",
            "Fix the file (openbayes-cli's template shows every key).",
        ) from None


def _problem(item: Any) -> str:
    """One pydantic error in the file's words: ``hyper_tuning.parameter_specs[0]: ...``."""
    loc = list(item["loc"])
    if loc[:2] == ["data_bindings", "data_bindings"]:
        loc = loc[1:]  # a list of entries is read as the mapping form's data_bindings
    kind = item["type"]
    if kind == "missing" and loc:
        *loc, key = loc
    place = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in loc).lstrip(".")
    if kind == "missing":
        message = f"needs '{key}'"
    elif kind == "dict_type":
        message = "must be a mapping of names to values"
    elif kind == "list_type":
        message = "must be a list"
    else:
        message = str(item["msg"]).removeprefix("Value error, ")
    return (
        f"'{place}' {message}"
        if place and kind in ("missing", "dict_type", "list_type")
        else (f"{place}: {message}" if place else message)
    )
