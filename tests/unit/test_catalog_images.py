"""Image catalog: HyperAI runtime names map to the closest image of their family (issue 12)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from hyperai_provider.core.catalog import Catalogs
from hyperai_provider.exceptions import ConfigurationError

PYTORCH = "hyperai/pytorch:2.14-bookworm-1"
TENSORFLOW = "hyperai/tensorflow:2.21-bookworm-1"


@pytest.fixture
def catalogs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Catalogs:
    """The packaged catalog only (no user file)."""
    monkeypatch.delenv("HYPERAI_IMAGES", raising=False)
    return Catalogs(tmp_path)


@pytest.fixture
def many_torches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Catalogs:
    """The packaged catalog plus a user file with more PyTorch versions."""
    monkeypatch.delenv("HYPERAI_IMAGES", raising=False)
    (tmp_path / "images.yaml").write_text(
        "pytorch-1.13:\n  reference: r/pt:1.13\n"
        "pytorch-2.4:\n  reference: r/pt:2.4\n"
        "pytorch-2.6:\n  reference: r/pt:2.6\n"
    )
    return Catalogs(tmp_path)


def test_packaged_catalog_has_framework_images_named_like_hyperai_runtimes(catalogs: Catalogs) -> None:
    assert {"python", "jupyter", "pytorch-2.14", "tensorflow-2.21"} <= set(catalogs.images)
    assert catalogs.image("pytorch-2.14")[0] == PYTORCH
    assert catalogs.image("tensorflow-2.21")[0] == TENSORFLOW
    assert catalogs.images["pytorch-2.14"].runtime() == ("pytorch", (2, 14))
    assert catalogs.images["python"].runtime() == ("python", None)


@pytest.mark.parametrize(
    ("name", "reference", "reason"),
    [
        ("pytorch-2.6-2204", PYTORCH, "pytorch version closest to 2.6"),
        ("pytorch-2.8-2204", PYTORCH, "pytorch version closest to 2.8"),
        ("tensorflow-2.15-2204", TENSORFLOW, "tensorflow version closest to 2.15"),
        ("pytorch", PYTORCH, "the newest pytorch image"),
        ("tensorflow-2.x", TENSORFLOW, "the newest tensorflow 2.x image"),
        ("pytorch-2.14.1", PYTORCH, "the same pytorch version as 2.14.1"),
        ("PyTorch-2.6-2204", PYTORCH, "pytorch version closest to 2.6"),
    ],
    ids=["cli-default", "pytorch-2.8", "tensorflow-2.15", "family-only", "wildcard", "patch-level", "case"],
)
def test_hyperai_runtime_names_map_to_the_closest_image_with_a_warning(
    catalogs: Catalogs, caplog: pytest.LogCaptureFixture, name: str, reference: str, reason: str
) -> None:
    with caplog.at_level(logging.WARNING, logger="hyperai_provider.core.catalog"):
        resolved, entry = catalogs.image(name)
    assert resolved == reference
    assert entry is not None and entry.reference == reference
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert f"{name!r} is not in the catalog: using {entry.name!r} ({reference})" in message
    assert reason in message


def test_the_hyperai_variant_suffix_is_named_as_ignored(
    catalogs: Catalogs, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="hyperai_provider.core.catalog"):
        catalogs.image("pytorch-2.6-2204")
    assert "'-2204' variant suffix is ignored" in caplog.text


@pytest.mark.parametrize(
    ("name", "chosen"),
    [
        ("pytorch-2.6-2204", "pytorch-2.6"),  # exact version, other suffix
        ("pytorch-2.5-2204", "pytorch-2.6"),  # 2.4 and 2.6 equally close: the newer wins
        ("pytorch-2.3", "pytorch-2.4"),
        ("pytorch-2.11-2204", "pytorch-2.14"),  # |11-14| < |11-6|
        ("pytorch-2.9", "pytorch-2.6"),  # |9-6| < |9-14|
        ("pytorch-1.8-2004", "pytorch-1.13"),  # the same major first
        ("pytorch-1.x", "pytorch-1.13"),
        ("pytorch-2.x", "pytorch-2.14"),
        ("pytorch", "pytorch-2.14"),
    ],
)
def test_closest_version_prefers_the_same_major_then_the_nearest_minor(
    many_torches: Catalogs, name: str, chosen: str
) -> None:
    assert many_torches.image(name)[1] == many_torches.images[chosen]


def test_another_major_version_is_chosen_with_a_warning_that_says_so(
    catalogs: Catalogs, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="hyperai_provider.core.catalog"):
        reference, _ = catalogs.image("tensorflow-1.15-2004")
    assert reference == TENSORFLOW
    assert "a different major version: code written for tensorflow 1.15 may not run" in caplog.text


def test_catalog_names_and_references_are_used_as_they_are_without_a_warning(
    catalogs: Catalogs, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="hyperai_provider.core.catalog"):
        assert catalogs.image("pytorch-2.14")[0] == PYTORCH
        assert catalogs.image("python")[0] == "hyperai/base:bookworm-1"
        # anything with ':' or '/' that is not a catalog name stays a plain reference
        assert catalogs.image("pytorch:2.6") == ("pytorch:2.6", None)
        assert catalogs.image("someone/pytorch-2.6-2204") == ("someone/pytorch-2.6-2204", None)
        assert catalogs.image("pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime")[1] is None
    assert caplog.records == []


@pytest.mark.parametrize("name", ["mxnet-1.9", "mxnet-1.9-2204", "paddlepaddle"])
def test_an_unknown_family_is_a_configuration_error_listing_what_exists(
    catalogs: Catalogs, caplog: pytest.LogCaptureFixture, name: str
) -> None:
    family = name.split("-")[0]
    with pytest.raises(ConfigurationError) as caught:
        catalogs.image(name)
    error = caught.value
    assert f"Unknown image {name!r}" in error.headline
    assert f"no image family {family!r} exists" in error.headline
    assert "pytorch-2.14, tensorflow-2.21" in (error.hint or "")  # the catalog names
    assert "jupyter, numpy, python, pytorch, tensorflow" in (error.hint or "")  # the families
    assert caplog.records == []


def test_a_name_that_is_no_runtime_name_keeps_the_plain_unknown_image_error(catalogs: Catalogs) -> None:
    with pytest.raises(ConfigurationError, match="not a catalog name, not an image reference") as caught:
        catalogs.image("jupyter-lab")
    assert "not a HyperAI runtime name" in caught.value.headline


def test_an_entry_may_name_its_family_and_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HYPERAI_IMAGES", raising=False)
    (tmp_path / "images.yaml").write_text(
        "my-torch:\n  reference: r/mine:1\n  family: pytorch\n  version: '2.6'\n"
        "pytorch-2.6-2204:\n  reference: r/exact:1\n"
    )
    catalogs = Catalogs(tmp_path)
    assert catalogs.image("pytorch-2.6-2004")[0] == "r/mine:1"
    assert catalogs.image("pytorch-2.6-2204")[0] == "r/exact:1"  # a catalog name wins over the rule


def test_a_version_that_is_not_numeric_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HYPERAI_IMAGES", raising=False)
    (tmp_path / "images.yaml").write_text("x:\n  reference: r/x:1\n  family: pytorch\n  version: latest\n")
    with pytest.raises(ConfigurationError, match="Entry 'x'"):
        Catalogs(tmp_path)
