"""Untrusted archives: published checksums, safe tar members, optional downloads.

Data archives come from the internet and are treated as hostile until checked:

* :func:`verify_md5` compares a file's MD5 with the published digest; a mismatch
  is a :class:`ChecksumError` naming the path and both digests (callers let the
  user skip it with ``verify=False`` / ``--skip-checksum``).
* :func:`regular_members` reads tar members *in place*: nothing is extracted to
  disk, and a member is read only when it is a regular file with a relative
  name free of ``..``. Links, devices, absolute and traversing names anywhere in
  the archive raise :class:`UnsafeArchiveError`.
* A truncated or corrupt archive is an :class:`UnsafeArchiveError` naming it,
  never a partial data set.
* :func:`locate` finds the archive or explains how to get it; it downloads only
  when asked and then checks the digest before the file is used.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import tarfile
import tempfile
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path


class ChecksumError(ValueError):
    """A file's MD5 is not the published one."""


class UnsafeArchiveError(ValueError):
    """An archive member is not a plain file inside the archive, or the archive is broken."""


def md5(path: str | os.PathLike) -> str:
    """Hex MD5 digest of a file, read in 1 MiB chunks.

    Example:
      >>> import tempfile, pathlib
      >>> p = pathlib.Path(tempfile.mkdtemp()) / "f"
      >>> _ = p.write_bytes(b"abc")
      >>> md5(p)
      '900150983cd24fb0d6963f7d28e17f72'
    """
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_md5(path: str | os.PathLike, expected: str, skip_hint: str) -> None:
    """Raise :class:`ChecksumError` unless ``path`` has MD5 ``expected``.

    ``skip_hint`` tells the user how to skip the check (e.g. ``"verify=False"``).

    Example:
      >>> import tempfile, pathlib
      >>> p = pathlib.Path(tempfile.mkdtemp()) / "f"
      >>> _ = p.write_bytes(b"abc")
      >>> verify_md5(p, "900150983cd24fb0d6963f7d28e17f72", "verify=False")
    """
    actual = md5(path)
    if actual != expected:
        raise ChecksumError(
            f"{path}: MD5 {actual} differs from the published {expected}; the file is "
            f"incomplete, corrupt or not the original archive. Download it again, or pass "
            f"{skip_hint} to use it anyway"
        )


def check_member(member: tarfile.TarInfo, archive: str | os.PathLike) -> None:
    """Refuse anything but a regular file or folder with a relative name free of ``..``."""
    name = member.name
    parts = posixpath.normpath(name).split("/")
    if name.startswith(("/", "\\")) or os.path.isabs(name) or ":" in parts[0]:
        raise UnsafeArchiveError(f"{archive}: member {name!r} has an absolute path")
    if ".." in name.replace("\\", "/").split("/"):
        raise UnsafeArchiveError(f"{archive}: member {name!r} points outside the archive (..)")
    if not (member.isreg() or member.isdir()):
        kind = "a link" if member.issym() or member.islnk() else "not a regular file"
        raise UnsafeArchiveError(f"{archive}: member {name!r} is {kind}; refusing it")


def regular_members(
    path: str | os.PathLike, wanted: Callable[[str], bool]
) -> Iterator[tuple[str, bytes]]:
    """``(name, content)`` of each member whose name satisfies ``wanted``, read in place.

    The archive is streamed once (``.tar``, ``.tar.gz``); every member is checked by
    :func:`check_member` (unsafe ones raise, even when not wanted), and a truncated
    or corrupt archive raises :class:`UnsafeArchiveError`.

    Example:
      >>> import io, tarfile, tempfile, pathlib
      >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.tar"
      >>> with tarfile.open(p, "w") as tar:
      ...     info = tarfile.TarInfo("d/x.txt"); info.size = 2
      ...     tar.addfile(info, io.BytesIO(b"hi"))
      >>> list(regular_members(p, lambda name: name.endswith(".txt")))
      [('d/x.txt', b'hi')]
    """
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in _iter_checked(tar, path):
                if member.isreg() and wanted(member.name):
                    yield member.name, _read_all(tar, member, path)
    except (tarfile.TarError, EOFError, OSError, zlib.error) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise UnsafeArchiveError(f"{path}: truncated or corrupt archive ({err})") from err


def _iter_checked(tar: tarfile.TarFile, path: str | os.PathLike) -> Iterator[tarfile.TarInfo]:
    for member in tar:
        check_member(member, path)
        yield member


def _read_all(tar: tarfile.TarFile, member: tarfile.TarInfo, path: str | os.PathLike) -> bytes:
    f = tar.extractfile(member)
    data = b"" if f is None else f.read()
    if len(data) != member.size:
        raise UnsafeArchiveError(f"{path}: member {member.name!r} is truncated")
    return data


def locate(
    path: str | os.PathLike,
    *,
    url: str,
    digest: str,
    what: str,
    download: bool,
    verify: bool,
    skip_hint: str,
) -> Path:
    """The archive at ``path``, downloaded first if asked and missing, checked unless not.

    Without the file (and without ``download``) raises ``FileNotFoundError`` naming
    the path and how to get the file. A download goes to a temporary file, is
    checked against ``digest`` and only then moved to ``path``.
    """
    path = Path(path).expanduser()
    if not path.exists():
        if not download:
            raise FileNotFoundError(
                f"{what} not found at {path}. Download {url} (MD5 {digest}) and pass its "
                "path (--data PATH, or path=... in Python), or pass --download "
                "(download=True) where a network is available"
            )
        _download(url, path, digest, what)
    elif verify:
        verify_md5(path, digest, skip_hint)
    return path


def _download(url: str, path: Path, digest: str, what: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".part") as tmp:
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                shutil.copyfileobj(response, tmp)
        except OSError as err:
            os.unlink(tmp.name)
            raise FileNotFoundError(
                f"{what}: could not download {url} ({err}); download it by hand and pass its path"
            ) from err
    try:
        verify_md5(tmp.name, digest, "verify=False after checking the file by hand")
    except ChecksumError:
        os.unlink(tmp.name)
        raise
    os.replace(tmp.name, path)
