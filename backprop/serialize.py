"""Portable ``.npz`` archives: arrays plus one JSON document, never pickled.

``dump(arrays, meta)`` writes a standard NumPy ``.npz`` (readable with ``np.load``) whose member
``meta`` is a 0-d unicode array holding JSON. ``load(data, expect)`` reads each member's header
first and checks its shape and dtype against ``expect(meta)`` before reading any array data, so a
hostile file cannot make the loader allocate more than the spec allows.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from typing import Any, BinaryIO

import numpy as np

MAX_META_CHARS = 16 * 1024 * 1024

Expected = dict[str, tuple[tuple[int, ...], tuple[str, ...]]]


def dump(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> bytes:
    """An ``.npz`` archive of ``arrays`` plus ``meta`` (JSON) as bytes."""
    buf = io.BytesIO()
    members = {name: np.ascontiguousarray(arr) for name, arr in arrays.items()}
    np.savez(buf, meta=np.array(json.dumps(meta, sort_keys=True)), **members)
    return buf.getvalue()


def _header(member: BinaryIO) -> tuple[tuple[int, ...], bool, np.dtype]:
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(member)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(member)
    raise ValueError(f"unsupported .npy format version {version}")


def _read(zf: zipfile.ZipFile, name: str, shape: tuple[int, ...] | None,
          dtypes: tuple[str, ...]) -> np.ndarray:
    try:
        info = zf.getinfo(name + ".npy")
    except KeyError:
        raise ValueError(f"the archive has no array {name!r}") from None
    with zf.open(info) as member:
        got_shape, fortran, dtype = _header(member)
        if dtype.hasobject or (dtype.kind not in "fiub" and not (
                dtype.kind == "U" and "U" in dtypes)):
            raise ValueError(f"array {name!r} has unsupported dtype {dtype}")
        if dtypes and dtype.kind != "U" and dtype.name not in dtypes:
            raise ValueError(f"array {name!r} has dtype {dtype}, expected one of {list(dtypes)}")
        if shape is not None and tuple(got_shape) != tuple(shape):
            raise ValueError(f"array {name!r} has shape {tuple(got_shape)}, the spec "
                             f"says {tuple(shape)}")
        if dtype.kind == "U" and dtype.itemsize > 4 * MAX_META_CHARS:
            raise ValueError(f"array {name!r} is too large")
        count = int(np.prod(got_shape, dtype=np.int64))
        data = member.read(count * dtype.itemsize)
        if len(data) != count * dtype.itemsize:
            raise ValueError(f"array {name!r} is truncated")
        arr = np.frombuffer(data, dtype=dtype).copy()
        return arr.reshape(got_shape, order="F" if fortran else "C")


def load(
    data: bytes | BinaryIO, expect: Callable[[dict[str, Any]], Expected]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read an archive written by ``dump``.

    ``expect(meta)`` returns ``{name: (shape, allowed_dtype_names)}`` for every array to load
    (shape ``None`` entries are not allowed: every size is known from the meta). Raises
    ``ValueError`` on anything unexpected.
    """
    stream = io.BytesIO(data) if isinstance(data, bytes | bytearray | memoryview) else data
    try:
        zf = zipfile.ZipFile(stream)
    except zipfile.BadZipFile:
        raise ValueError("not an .npz archive") from None
    with zf:
        raw = _read(zf, "meta", (), ("U",))
        try:
            meta = json.loads(str(raw[()]))
        except json.JSONDecodeError as exc:
            raise ValueError(f"the archive's meta is not JSON: {exc}") from None
        if not isinstance(meta, dict):
            raise ValueError("the archive's meta must be a JSON object")
        arrays = {name: _read(zf, name, shape, dtypes)
                  for name, (shape, dtypes) in expect(meta).items()}
    return arrays, meta
