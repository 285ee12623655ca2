"""Who may read the registry's files: the modes it creates them with, and the start-up check of existing ones.

Everything Dockyard writes (database and its journals, keys, blobs, uploads) is for its own user alone:
directories 0700, files 0600. `data_group_readable` widens that to 0750/0640 so a backup user in the
registry's group can read (docs/configuration.md, "File permissions").
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

# Public by design (TLS certificates are sent to every client), so never reported as too wide.
_PUBLIC_SUFFIXES = (".crt",)
# The start-up check looks at this many entries at most: a blob store may hold millions of files.
CHECK_LIMIT = 10_000


@dataclass(frozen=True)
class Modes:
    """The modes new directories and files get, and the process umask that guarantees them."""

    directory: int
    file: int

    @property
    def umask(self) -> int:
        """Removes every bit the file and directory modes do not grant."""
        return 0o777 & ~self.directory

    def allows(self, mode: int, is_dir: bool) -> bool:
        """Whether an existing entry's permission bits are within what these modes grant."""
        granted = self.directory if is_dir else self.file
        return stat.S_IMODE(mode) & 0o777 & ~granted == 0


OWNER_ONLY = Modes(directory=0o700, file=0o600)
GROUP_READABLE = Modes(directory=0o750, file=0o640)


def modes_for(group_readable: bool) -> Modes:
    """The modes the `data_group_readable` setting selects."""
    return GROUP_READABLE if group_readable else OWNER_ONLY


def restrict_process(modes: Modes) -> None:
    """Set the process umask, so files made by libraries (SQLite's journals, TLS files) are private too."""
    os.umask(modes.umask)


def make_dirs(path: Path, mode: int) -> None:
    """Create `path` and its missing parents, each with `mode` (masked by the umask, which only narrows)."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=mode)
        except FileExistsError:
            continue


@dataclass(frozen=True)
class ModeReport:
    """Entries wider than allowed, found by `check_tree`."""

    too_wide: list[tuple[Path, int]]
    checked: int
    truncated: bool


def _entries(roots: Iterable[Path]) -> Iterator[tuple[Path, os.stat_result]]:
    seen: set[Path] = set()
    for root in roots:
        if root in seen or not root.exists():
            continue
        seen.add(root)
        yield root, root.lstat()
        for dirpath, dirnames, filenames in os.walk(root):
            for name in [*dirnames, *filenames]:
                path = Path(dirpath) / name
                if path in seen:
                    continue
                try:
                    yield path, path.lstat()
                except FileNotFoundError:
                    continue


def check_tree(roots: Iterable[Path], modes: Modes, limit: int = CHECK_LIMIT) -> ModeReport:
    """Walk `roots` (at most `limit` entries) and report directories and files wider than `modes`.

    Symbolic links are not followed (their own mode means nothing); public certificates are allowed.
    """
    too_wide: list[tuple[Path, int]] = []
    checked = 0
    for path, info in _entries(roots):
        if checked >= limit:
            return ModeReport(too_wide, checked, truncated=True)
        checked += 1
        if stat.S_ISLNK(info.st_mode) or path.name.endswith(_PUBLIC_SUFFIXES):
            continue
        if not modes.allows(info.st_mode, stat.S_ISDIR(info.st_mode)):
            too_wide.append((path, stat.S_IMODE(info.st_mode)))
    return ModeReport(too_wide, checked, truncated=False)
