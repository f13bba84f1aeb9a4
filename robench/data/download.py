"""Where data lives and how it arrives: cached, resumable, checksum-verified downloads.

Nothing here is needed offline when the files are already in the data dir. Every failure a user can
fix (offline, wrong checksum, truncated file) is a one-line `RobenchError` naming the file to put where.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Callable

from robench.errors import RobenchError

_DATA_DIR_OVERRIDE: Path | None = None
_CHUNK = 1 << 20


def set_data_dir(path: str | os.PathLike | None) -> None:
    """Process-wide override (the CLI's --data-dir); None returns to ROBENCH_DATA / the default."""
    global _DATA_DIR_OVERRIDE
    _DATA_DIR_OVERRIDE = Path(path).expanduser() if path else None


def data_dir() -> Path:
    """--data-dir, else $ROBENCH_DATA, else ~/.cache/robench."""
    if _DATA_DIR_OVERRIDE is not None:
        return _DATA_DIR_OVERRIDE
    env = os.environ.get("ROBENCH_DATA")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "robench"


def find_release(folder: str | None, given: str | Path | None, holds: Callable[[Path], bool]) -> Path | None:
    """Where a released set lies: the folder the user gave (--c-dir), then <data dir>/<folder>, each
    as it is or with the release's own folder inside (an archive extracted one level up); the first
    that `holds` the set's files, or None."""
    candidates = [Path(given)] if given else []
    if folder:
        candidates.append(data_dir() / folder)
    for candidate in candidates:
        for root in (candidate, candidate / folder) if folder else (candidate,):
            if holds(root):
                return root
    return None


def md5sum(path: Path, algorithm: str = "md5") -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, md5: str | None, what: str) -> None:
    """`md5` is an md5 hex digest, or "sha256:<hex>" where the source publishes a SHA-256; None where
    no checksum could be confirmed (docs/data.md lists which): then only the size is checked."""
    if md5 is None:
        return
    algorithm, expected = md5.split(":", 1) if ":" in md5 else ("md5", md5)
    actual = md5sum(path, algorithm)
    if actual != expected:
        raise RobenchError(
            f"{what}: checksum mismatch for {path} ({algorithm} {actual}, expected {expected}); "
            f"delete it and download again"
        )


def fetch(url: str, dest: Path, md5: str | None, what: str, size: int | None = None, timeout: float = 30.0) -> Path:
    """Return dest, downloading url into it first if it is missing.

    A partial download is kept as `<dest>.part` and resumed with an HTTP Range request next time.
    The file is md5-verified before it is moved into place, so `dest` is never half-written.
    """
    dest = Path(dest)
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "robench"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            resumed = have and response.status == 206
            mode = "ab" if resumed else "wb"
            total = size or (int(response.headers.get("Content-Length", 0)) + (have if resumed else 0))
            _copy_with_progress(response, part, mode, have if resumed else 0, total, what)
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        reason = getattr(e, "reason", e)
        raise RobenchError(
            f"{what}: cannot download {url} ({reason}); put the file at {dest} or connect to the internet"
        ) from None
    if size is not None and part.stat().st_size != size:
        raise RobenchError(
            f"{what}: download of {url} is incomplete ({part.stat().st_size} of {size} bytes); "
            f"run the command again to resume"
        )
    try:
        verify(part, md5, what)
    except RobenchError:
        part.unlink()
        raise
    os.replace(part, dest)
    return dest


def _copy_with_progress(response, part: Path, mode: str, done: int, total: int, what: str) -> None:
    from robench.progress import progress_bar

    with open(part, mode) as f, progress_bar(f"download {what}", total=total or None, unit="B") as bar:
        bar.advance(done)
        for block in iter(lambda: response.read(_CHUNK), b""):
            f.write(block)
            bar.advance(len(block))


def extract_tar(archive: Path, into: Path, expect: str | tuple[str, ...], md5: str | None) -> Path:
    """Extract a tar archive into `into`; `expect` is the top folder it must create (or several,
    for an archive that holds several: ImageNet-C's hold one folder per corruption). Returns
    `into / expect` (for several: `into`).

    The archive is md5-verified first (a file placed by hand or left by an earlier download is
    checked too), and every member must be a plain file or folder whose path stays inside `into`:
    an absolute path, a '..' or a link is refused before anything is written (tarfile's "data"
    filter is applied as well). Extraction goes to a temporary sibling folder that is renamed at
    the end, so an interrupted extraction never leaves a half-filled `expect` folder behind.
    """
    folders = (expect,) if isinstance(expect, str) else tuple(expect)
    result = into / expect if isinstance(expect, str) else into
    if all((into / f).exists() for f in folders):
        return result
    verify(archive, md5, archive.name)
    tmp = into / f".{archive.name}.extracting"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        with tarfile.open(archive) as tar:
            _check_members(tar, archive)
            if hasattr(tarfile, "data_filter"):  # Python 3.12, and 3.11.4+ as a backport
                tar.extractall(tmp, filter="data")
            else:  # pragma: no cover - older Pythons; _check_members has already refused what the filter would
                tar.extractall(tmp)
    except (tarfile.TarError, EOFError, OSError) as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RobenchError(f"cannot extract {archive} ({e}); delete it and download again") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    missing = [f for f in folders if not (tmp / f).is_dir()]
    if missing:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RobenchError(f"{archive} does not contain the folder {missing[0]}/; delete it and download again")
    for folder in folders:
        if not (into / folder).exists():
            os.replace(tmp / folder, into / folder)
    shutil.rmtree(tmp, ignore_errors=True)
    return result


def _check_members(tar: tarfile.TarFile, archive: Path) -> None:
    for member in tar.getmembers():
        parts = PurePosixPath(member.name).parts
        if member.name.startswith(("/", "\\")) or ".." in parts or not (member.isfile() or member.isdir()):
            kind = "a link or special file" if not (member.isfile() or member.isdir()) else "a path outside its folder"
            raise RobenchError(f"{archive} holds {kind} ('{member.name}'), so it is not extracted; delete it and "
                               f"download again from the official source")
