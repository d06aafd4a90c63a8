"""A hop store at an object-store URL (``s3://bucket/prefix``, ``gs://bucket/prefix``): where
``logpath.store`` keeps its files when ``--store`` is a URL, through pyarrow's filesystems.

An object store has no rename and no flock; what the store does instead:

* Parts are written under new names (a run's uuid) before the manifest names them, and the
  manifest is replaced last, as one object: S3 and GCS show an object whole or not at all, so a
  reader sees the previous manifest or the new one, never half of one.
* The one-writer rule: on S3, ``lock`` is created with a conditional PUT (``If-None-Match: *``,
  boto3), which fails when the object exists: a second writer is refused as a second flock is.
  Unlike a flock, a lock object outlives a writer killed with -9: the message names it, to be
  deleted by hand once that writer is known to be dead. Without boto3, or on GCS, nothing is
  locked, and each run says so on stderr: the one-writer rule is then the user's.

Credentials and the endpoint come from the environment as pyarrow reads them
(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL or AWS_ENDPOINT_URL_S3,
AWS_DEFAULT_REGION...; GOOGLE_APPLICATION_CREDENTIALS for GCS).
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from logpath.errors import StoreError, StoreLockedError

if TYPE_CHECKING:
    import pyarrow.fs as pafs

# What makes ``--store`` a URL rather than a directory.
SCHEMES = ("s3", "gs", "gcs")
# How long pyarrow's GCS client retries an operation before the store is said unreachable.
GCS_RETRIES = timedelta(seconds=10)


def is_url(text: str) -> bool:
    scheme, sep, _ = text.partition("://")
    return bool(sep) and scheme.lower() in SCHEMES


class StoreURL:
    """A place in an object store: its URL (what messages name) and its key in pyarrow's
    filesystem for the bucket, opened once per store (for s3:// that may ask the bucket's
    region)."""

    __slots__ = ("filesystem", "key", "url")

    def __init__(self, url: str, filesystem: pafs.FileSystem, key: str) -> None:
        self.url = url.rstrip("/")
        self.filesystem = filesystem
        self.key = key.rstrip("/")

    @classmethod
    def parse(cls, url: str) -> StoreURL:
        """The URL's filesystem, or a StoreError naming the URL."""
        import pyarrow.fs as pafs

        scheme, _, rest = url.partition("://")
        rest = rest.rstrip("/")
        if not rest or rest.startswith("/"):
            raise StoreError(
                f"{url}: not a store logpath can open (no bucket: {scheme}://BUCKET/PREFIX)"
            )
        try:
            if scheme.lower() in ("gs", "gcs"):
                # as from_uri makes it, but with a bound on retries: its default (15 min)
                # left a missing credential or an unreachable endpoint hanging
                filesystem: pafs.FileSystem = pafs.GcsFileSystem(retry_time_limit=GCS_RETRIES)
                key = rest
            else:
                filesystem, key = pafs.FileSystem.from_uri(url.rstrip("/"))
        except (OSError, ValueError, ImportError) as error:
            raise StoreError(f"{url}: not a store logpath can open ({oneline(error)})") from None
        return cls(url, filesystem, key)

    def __truediv__(self, name: str) -> StoreURL:
        return StoreURL(f"{self.url}/{name}", self.filesystem, f"{self.key}/{name}")

    @property
    def name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def bucket(self) -> str:
        return self.key.split("/", 1)[0]

    @property
    def object_key(self) -> str:
        """The key inside the bucket (what boto3 calls Key)."""
        return self.key.split("/", 1)[1] if "/" in self.key else ""

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"StoreURL({self.url!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StoreURL) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)

    def read_bytes(self) -> bytes | None:
        """The object's bytes; None when there is no such object."""
        try:
            with self.filesystem.open_input_stream(self.key) as stream:
                data: bytes = stream.read()
                return data
        except FileNotFoundError:
            return None

    def write_bytes(self, data: bytes) -> None:
        """One object, whole: pyarrow sends a small file in one PUT, a large one as a multipart
        upload, which S3 also makes visible only once complete."""
        with self.filesystem.open_output_stream(self.key) as stream:
            stream.write(data)

    def exists(self) -> bool:
        import pyarrow.fs as pafs

        return bool(self.filesystem.get_file_info(self.key).type != pafs.FileType.NotFound)

    def size(self) -> int | None:
        import pyarrow.fs as pafs

        info = self.filesystem.get_file_info(self.key)
        return None if info.type == pafs.FileType.NotFound else int(info.size or 0)

    def names(self) -> list[str]:
        """The names of the objects directly under this prefix."""
        import pyarrow.fs as pafs

        selector = pafs.FileSelector(self.key, allow_not_found=True)
        return [
            info.base_name
            for info in self.filesystem.get_file_info(selector)
            if info.type == pafs.FileType.File
        ]

    def unlink(self) -> None:
        with suppress(FileNotFoundError):
            self.filesystem.delete_file(self.key)


def check_reachable(root: StoreURL) -> None:
    """Refuse, with one line naming the URL, a store whose bucket cannot be reached or read
    (no such bucket, denied, no server at the endpoint)."""
    try:
        (root / "manifest.json").exists()
    except OSError as error:
        raise StoreError(f"{root}: the store cannot be reached ({oneline(error)})") from None


@contextmanager
def locked(root: StoreURL, holder: str) -> Iterator[None]:
    """The store's lock object ``lock``, created only if it does not exist (S3 with boto3),
    deleted on leaving; else a line on stderr that nothing is locked."""
    lock = root / "lock"
    client = _s3_client(root)
    if client is None:
        print(
            f"logpath: {root}: not locked (an object store has no flock, and a conditional "
            "create needs s3:// and boto3): run one writer at a time yourself",
            file=sys.stderr,
        )
        yield
        return
    note = f"{holder} (pid {os.getpid()} on {socket.gethostname()}, since "
    note += f"{datetime.now(UTC).isoformat(timespec='seconds')})"
    # looked at first too: an S3-compatible server that ignores If-None-Match would let the
    # PUT replace a running writer's lock (then only two writers starting at once get past)
    if lock.exists():
        _refuse(root, lock)
    try:
        client.put_object(
            Bucket=lock.bucket, Key=lock.object_key, Body=note.encode(), IfNoneMatch="*"
        )
    except Exception as error:
        code = _error_code(error)
        if code in ("PreconditionFailed", "ConditionalRequestConflict"):
            _refuse(root, lock)
        raise StoreError(f"{root}: the store cannot be locked ({oneline(error)})") from None
    try:
        yield
    finally:
        with suppress(Exception):
            client.delete_object(Bucket=lock.bucket, Key=lock.object_key)


def _refuse(root: StoreURL, lock: StoreURL) -> None:
    """A second writer refused, told who holds the lock (what its note says)."""
    held = b"another process"
    with suppress(OSError):
        held = lock.read_bytes() or held
    raise StoreLockedError(
        f"{root}: the store is being written by {held.decode(errors='replace').strip()}\n\n"
        f"Wait for it to finish, or use another --store. If that run is dead (killed with -9), "
        f"delete {lock} and run again."
    )


def _s3_client(root: StoreURL) -> Any:
    """A boto3 S3 client for the store's bucket (the endpoint and keys from the same
    environment pyarrow reads), or None (not s3://, or boto3 not installed)."""
    if not root.url.lower().startswith("s3://"):
        return None
    try:
        import boto3
    except ImportError:
        return None
    region = getattr(root.filesystem, "region", None) or None
    return boto3.client("s3", region_name=region)


def _error_code(error: Exception) -> str:
    response = getattr(error, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", ""))
    return ""


def unreachable(error: BaseException) -> bool:
    """Whether an error of pyarrow's S3 or GCS client is the store's service failing (no
    answer, denied), not a damaged file: Arrow raises both as OSError, and says which client
    failed only in the text."""
    text = str(error)
    return isinstance(error, OSError) and ("AWS Error" in text or "google::cloud" in text)


def oneline(error: BaseException) -> str:
    return " ".join(str(error).split())
