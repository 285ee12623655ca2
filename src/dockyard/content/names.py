"""Repository names, tags and references, validated as the OCI Distribution specification defines them."""

from __future__ import annotations

import re

from dockyard.content.digests import Digest, parse_digest
from dockyard.content.errors import NameInvalid, TagInvalid

MAX_NAME_LENGTH = 255
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_NAME = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*")
_TAG = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")


def validate_name(name: str) -> str:
    """Return the repository name, or raise NameInvalid saying what is wrong with it."""
    if len(name) > MAX_NAME_LENGTH:
        raise NameInvalid(f"repository name is longer than {MAX_NAME_LENGTH} characters")
    # fullmatch: `$` would also match before a trailing newline.
    if not _NAME.fullmatch(name):
        raise NameInvalid(
            "invalid repository name: components of lowercase letters and digits, "
            "separated by . _ __ or -, joined by /"
        )
    return name


def validate_tag(tag: str) -> str:
    """Return the tag, or raise TagInvalid."""
    if not _TAG.fullmatch(tag):
        raise TagInvalid("invalid tag: up to 128 of [A-Za-z0-9_.-], not starting with . or -")
    return tag


def parse_reference(reference: str) -> Digest | str:
    """A manifest reference is a digest (contains ':') or a tag."""
    if ":" in reference:
        return parse_digest(reference)
    return validate_tag(reference)


def namespace_of(name: str) -> str | None:
    """The namespace of a repository: its first path component, or None for a top-level name."""
    head, sep, _ = name.partition("/")
    return head if sep else None
