"""Docker image references, checked against the distribution reference grammar before Docker sees them.

The grammar is the one in github.com/distribution/reference (regexp.go)::

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ domain "/" ] path-component ( "/" path-component )*     (at most 255 characters)
    domain     := host [ ":" port ]
    path-component := [a-z0-9]+ ( separator [a-z0-9]+ )*   separator := "." | "_" | "__" | "-"+
    tag        := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
    digest     := algorithm ":" hex{32,}

The first component counts as a registry only if it contains ``.`` or ``:`` or is ``localhost`` (Docker's
own rule); otherwise it is part of the repository path, which must be lowercase. So ``UPPER/case`` is
refused as Docker refuses it, while catalog names such as ``python`` or ``pytorch-2.5`` are valid references.
"""

from __future__ import annotations

import re

NAME_TOTAL_LENGTH_MAX = 255

_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = _ALPHANUMERIC + r"(?:" + _SEPARATOR + _ALPHANUMERIC + r")*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = r"(?:" + _DOMAIN_NAME + "|" + _IPV6 + r")(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_REFERENCE = re.compile(
    r"^(?P<name>(?:(?P<domain>" + _DOMAIN + r")/)?" + _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*)"
    r"(?::(?P<tag>" + _TAG + r"))?(?:@(?P<digest>" + _DIGEST + r"))?$",
    re.ASCII,  # Go's \w is ASCII only
)

EXAMPLE = "'repository/name:tag' or 'registry.example.com:5000/team/name:tag'"


def reference_problem(value: str) -> str | None:
    """Why ``value`` is not a Docker image reference, or None when it is one."""
    if not value:
        return "it is empty"
    if value != value.strip() or any(char.isspace() for char in value):
        return "it contains whitespace"
    match = _REFERENCE.match(value)
    if match is None:
        lowered = value.lower()
        if lowered != value and _REFERENCE.match(lowered):
            return "the repository name must be lowercase"
        if value.count(":") > 1 and "@" not in value and "/" not in value.split(":", 1)[1]:
            return "it has more than one ':' (a single ':' separates the tag)"
        return (
            "it does not follow Docker's reference grammar (lowercase letters, digits and the separators "
            "'.', '_', '-' in the name; a tag of at most 128 letters, digits, '_', '.', '-')"
        )
    domain = match.group("domain")
    registry = domain is not None and ("." in domain or ":" in domain or domain == "localhost")
    if domain is not None and not registry and domain.lower() != domain:
        return "the repository name must be lowercase"  # not a registry host: part of the (lowercase) path
    if len(match.group("name")) > NAME_TOTAL_LENGTH_MAX:
        return f"its name is longer than {NAME_TOTAL_LENGTH_MAX} characters"
    return None


def is_reference(value: str) -> bool:
    return reference_problem(value) is None
