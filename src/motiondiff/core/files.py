"""Writing new files that are never overwritten, not even by a race.

Checking `path.exists()` and then renaming a finished temporary file over `path` leaves a window in which a file
created by someone else is silently replaced. `write_new_file` writes a temporary file beside `path` and then
hard-links it to `path`: the link fails when `path` exists, so publishing and the check are one step, and the
file appears complete or not at all. (text/cache.py and training/checkpoint_io.py replace on purpose: they
update their own files.) On a file system without hard links it falls back to creating `path` exclusively and
copying into it: still never an overwrite, though a reader could then see the file before it is complete.
"""

import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from motiondiff.core.errors import UserError

NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK, errno.ENOSYS}


def write_new_file(path, write: Callable[[Path], None], what: str = "export", fix: str = "give a new path") -> Path:
    """Create `path` with what write(temporary) puts in a temporary file of the same suffix beside it; UserError
    naming the path (`what` never overwrites a file; `fix`) if it exists, however late it appeared."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(handle)
    temporary = Path(name)
    os.chmod(temporary, new_file_mode())  # mkstemp's 0600 would make the file unreadable to the user's group
    try:
        write(temporary)
        _publish(temporary, path)
    except FileExistsError:
        raise UserError(f"'{path}' already exists: {what} never overwrites a file; {fix}.") from None
    finally:
        temporary.unlink(missing_ok=True)
    return path


def new_file_mode() -> int:
    """The permissions open() gives a new file: 0666 less the process's umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _publish(temporary: Path, path: Path) -> None:
    """Give the finished temporary file the name `path`; FileExistsError if that name is taken."""
    try:
        os.link(temporary, path)
    except FileExistsError:
        raise
    except OSError as error:
        if error.errno not in NO_HARD_LINKS:
            raise
        with open(temporary, "rb") as source, open(path, "xb") as target:
            shutil.copyfileobj(source, target)


def relative(path, base: Path) -> str:
    """path relative to base when inside it, else as given."""
    try:
        return str(Path(path).resolve().relative_to(Path(base).resolve()))
    except ValueError:
        return str(path)
