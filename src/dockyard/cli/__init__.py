"""The `dockyard` command. Each subcommand lives in its own module and is registered here."""

from __future__ import annotations

import click

from dockyard import __version__
from dockyard.storage.permissions import OWNER_ONLY, restrict_process


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="dockyard")
def main() -> None:
    """Dockyard, a trusted private container registry.

    Start a registry on embedded defaults (SQLite and a filesystem blob store in one data
    directory) with `dockyard serve`. Every option can also be set in a settings file
    (--config FILE or DOCKYARD_CONFIG; else ./dockyard.toml or /etc/dockyard/dockyard.toml when
    present), or with a DOCKYARD_* environment variable. The other commands act on the registry
    those settings name, and refuse to create a new one unless given --init.
    """
    # Whatever a command writes (TLS files, downloads, the database) is private from the first file on;
    # loading the settings (cli/options.py) widens this to the group when data_group_readable is set.
    restrict_process(OWNER_ONLY)


def _register() -> None:
    from dockyard.cli.admin import admin
    from dockyard.cli.backup import backup, restore
    from dockyard.cli.cache import cache
    from dockyard.cli.certs import certs
    from dockyard.cli.cluster import cluster
    from dockyard.cli.gc import gc
    from dockyard.cli.scan import scan
    from dockyard.cli.serve import serve
    from dockyard.cli.vulndb import vulndb

    main.add_command(serve)
    main.add_command(gc)
    main.add_command(certs)
    main.add_command(admin)
    main.add_command(vulndb)
    main.add_command(scan)
    main.add_command(cache)
    main.add_command(cluster)
    main.add_command(backup)
    main.add_command(restore)


_register()
