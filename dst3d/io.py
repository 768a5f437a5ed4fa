"""Small I/O helpers shared by the stages: atomic writes and image reading with clear errors."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pandas as pd


def _process_umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


# Read once at import: os.umask can only be read by setting it, which would race with writer threads.
_UMASK = _process_umask()


def _temporary_sibling(path: Path) -> Path:
    """A temporary sibling of ``path`` to write to before :func:`os.replace` publishes it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(handle)
    # mkstemp creates mode 0600; published files should be as readable as any other file (shared clusters).
    os.chmod(temporary, 0o666 & ~_UMASK)
    return Path(temporary)


@contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path`` to write; when the block ends without an error it replaces ``path``
    in one rename, otherwise it is removed. A reader never sees half a file, and a failed write leaves the
    previous file as it was. Every file the workflow publishes goes through here (or through
    :func:`staged_directory` for folders)."""
    temporary = _temporary_sibling(Path(path))
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_table(table: pd.DataFrame, path: Path) -> None:
    """Write a DataFrame atomically as Parquet (``.parquet``) or CSV (anything else)."""
    with atomic_write(path) as temporary:
        if Path(path).suffix == ".parquet":
            table.to_parquet(temporary, index=False)
        else:
            table.to_csv(temporary, index=False)


def write_json(data: object, path: Path) -> None:
    """Write JSON atomically (sorted keys, indented) so a reader never sees half a file."""
    with atomic_write(path) as temporary:
        temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_image(image: np.ndarray, path: Path, atomic: bool = True) -> None:
    """Write an image (OpenCV channel order) atomically; the format follows the suffix of ``path``.

    ``atomic=False`` writes in place, into a folder that must exist: for files inside a folder that is itself
    published atomically (:func:`staged_directory`), where a temporary and rename per file would only cost time.
    """
    path = Path(path)
    ok, encoded = cv2.imencode(path.suffix, image)
    if not ok:
        raise OSError(f"could not encode {path}")
    if not atomic:
        path.write_bytes(encoded.tobytes())
        return
    with atomic_write(path) as temporary:
        temporary.write_bytes(encoded.tobytes())


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")


def without_png_text(data: bytes) -> bytes:
    """The bytes of a PNG file without its text chunks (``tEXt``, ``zTXt``, ``iTXt``), every other chunk as it
    was: the pixels are untouched. Raises ``ValueError`` for data that is not a whole PNG."""
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG file (no PNG signature)")
    parts, position = [PNG_SIGNATURE], len(PNG_SIGNATURE)
    while position < len(data):
        end = position + 12 + int.from_bytes(data[position : position + 4], "big")  # length, type, data, CRC
        if end > len(data):
            raise ValueError("truncated PNG file")
        if data[position + 4 : position + 8] not in _PNG_TEXT_CHUNKS:
            parts.append(data[position:end])
        position = end
    return b"".join(parts)


def read_image(path: str | Path, flags: int = cv2.IMREAD_COLOR) -> np.ndarray:
    """cv2.imread that raises an error naming the file instead of returning None."""
    image = cv2.imread(str(path), flags)
    if image is None:
        raise FileNotFoundError(f"cannot read image {path}: missing or not an image")
    return image


def read_tables(paths: list[str | Path]) -> pd.DataFrame:
    """Concatenate per-shard Parquet tables into one DataFrame."""
    return pd.concat([pd.read_parquet(path) for path in paths], ignore_index=True)


@contextmanager
def staged_directory(final: Path) -> Iterator[Path]:
    """Yield a fresh ``<final>.partial`` folder to fill; on success it replaces ``final`` in one rename,
    on failure it is removed, so a half-written folder is never taken for a finished one."""
    final = Path(final)
    staging = final.with_name(final.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if final.exists():
        shutil.rmtree(final)
    os.replace(staging, final)
