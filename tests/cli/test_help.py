"""Every command's --help is its own: distinct from every other one, and about what that command does."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from dockyard.cli import main

# What each command's help must say about its own job (words from its purpose, not a sibling's).
PURPOSE = {
    "": ["container registry", "dockyard serve"],
    "serve": ["Run the registry", "listens on"],
    "gc": ["Remove untagged manifests, unreferenced blobs", "grace period"],
    "certs": ["TLS certificates"],
    "certs init": ["Create a CA", "are written to"],
    "certs show": ["Print each certificate", "certificates shown are read from"],
    "certs renew": ["Replace the server key", "are renewed in"],
    "certs issue": ["Sign a certificate for another server", "the CA that signs is read from"],
    "cache": ["Content caches"],
    "cache serve": ["Run a cache node"],
    "cache status": ["health and counters"],
    "cache add": ["Register the cache"],
    "cache list": ["List the caches"],
    "cache remove": ["Forget the cache"],
    "admin": ["Manage local users"],
    "admin create-user": ["Create the local user"],
    "admin make-admin": ["a system administrator"],
    "admin unmake-admin": ["ordinary user"],
    "admin passwd": ["Reset the password"],
    "admin list-users": ["List local users"],
    "admin rotate-key": ["signing registry tokens with a new key"],
    "vulndb": ["vulnerability database"],
    "vulndb import": ["Import OSV records"],
    "vulndb status": ["how many advisories"],
    "scan": ["scan results"],
    "scan show": ["Show the vulnerabilities"],
    "scan run": ["Scan IMAGE", "now"],
    "cluster": ["cluster of replicas"],
    "cluster status": ["whether the database takes writes"],
    "backup": ["consistent archive", "one database snapshot"],
    "restore": ["into an empty deployment", "checked before anything is written"],
}
# Words that belong to one command only: another command's help saying them describes the wrong job.
OWN_WORDS = {
    "certs init": ["are written to"],
    "certs show": ["certificates shown"],
    "certs renew": ["are renewed in"],
    "certs issue": ["the CA that signs"],
}


def all_commands(group: click.Group, prefix: str = "") -> list[str]:
    """Every command path under `group`, groups included."""
    found = [prefix.strip()]
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if isinstance(command, click.Group):
            found += all_commands(command, f"{path} ")
        else:
            found.append(path)
    return found


def help_of(path: str) -> str:
    result = CliRunner().invoke(main, [*path.split(), "--help"])
    assert result.exit_code == 0, result.output
    return " ".join(result.output.split())


def test_every_command_is_covered() -> None:
    assert sorted(all_commands(main)) == sorted(PURPOSE)


@pytest.mark.parametrize("path", sorted(PURPOSE))
def test_help_names_its_own_purpose(path: str) -> None:
    text = help_of(path)
    for words in PURPOSE[path]:
        assert words in text, f"`dockyard {path} --help` does not say {words!r}"
    for other, words in OWN_WORDS.items():
        if other != path:
            for word in words:
                assert word not in text, f"`dockyard {path} --help` describes {other}: {word!r}"


def test_every_help_text_differs() -> None:
    texts = {path: help_of(path) for path in PURPOSE}
    summaries = {}
    for path, text in texts.items():
        # The description, without the usage line and the shared option list.
        description = text.split("Options:")[0].split("]", 1)[-1]
        summaries[path] = description
    assert len(set(texts.values())) == len(texts)
    assert len(set(summaries.values())) == len(summaries), "two commands share a description"


# Commands that do not open a registry's database: a server that makes its own, TLS files, a cache node,
# a restore (which makes the registry it fills).
NO_REGISTRY = {"serve", "certs init", "certs show", "certs renew", "certs issue", "cache serve", "restore"}


def test_commands_acting_on_a_registry_offer_init() -> None:
    groups = {path for path in PURPOSE if path == "" or isinstance(main.commands.get(path), click.Group)}
    for path in set(PURPOSE) - groups - NO_REGISTRY:
        assert "--init" in help_of(path), f"`dockyard {path}` has no --init"
    for path in NO_REGISTRY:
        assert "--init" not in help_of(path)
