"""The portable archive: plain ``.npz`` members plus JSON meta; headers are checked before any
array data is read, and nothing is ever unpickled."""

import io
import json
import zipfile
from typing import Any

import numpy as np
import pytest

from backprop import serialize


def expect_params(shape: tuple[int, ...] = (3, 2), dtypes: tuple[str, ...] = ("float32",),
                  ) -> Any:
    return lambda meta: {"params": (shape, dtypes)}


def npy_member(header: dict[str, Any], data: bytes = b"") -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue() + data


def archive(members: dict[str, bytes], meta: Any = None) -> bytes:
    """A zip holding ``meta.npy`` (JSON, unless ``meta`` is raw bytes) and the given members."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        if not isinstance(meta, bytes):
            meta_buf = io.BytesIO()
            np.save(meta_buf, np.array(json.dumps(meta if meta is not None else {})))
            meta = meta_buf.getvalue()
        zf.writestr("meta.npy", meta)
        for name, data in members.items():
            zf.writestr(name + ".npy", data)
    return buf.getvalue()


def test_round_trip() -> None:
    params = np.arange(6, dtype=np.float32).reshape(3, 2)
    meta = {"format": "x/1", "nested": {"a": [1, 2.5, None, "s"]}, "inf": float("inf")}
    data = serialize.dump({"params": params}, meta)
    arrays, got = serialize.load(data, expect_params())
    assert got == meta
    np.testing.assert_array_equal(arrays["params"], params)
    assert arrays["params"].dtype == np.float32 and arrays["params"].flags.writeable
    # a file object works too
    arrays, _ = serialize.load(io.BytesIO(data), expect_params())
    np.testing.assert_array_equal(arrays["params"], params)


def test_plain_numpy_can_read_an_archive_without_pickle() -> None:
    params = np.linspace(0, 1, 6).reshape(3, 2)
    data = serialize.dump({"params": params}, {"k": "v"})
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        assert sorted(npz.files) == ["meta", "params"]
        np.testing.assert_array_equal(npz["params"], params)
        assert json.loads(str(npz["meta"][()])) == {"k": "v"}


def test_fortran_ordered_arrays_come_back_right() -> None:
    params = np.asfortranarray(np.arange(6, dtype=np.float32).reshape(3, 2))
    buf = io.BytesIO()
    np.save(buf, params)  # np.save keeps Fortran order
    arrays, _ = serialize.load(archive({"params": buf.getvalue()}), expect_params())
    np.testing.assert_array_equal(arrays["params"], params)


def test_only_expected_arrays_are_read() -> None:
    data = serialize.dump({"params": np.zeros((3, 2), np.float32),
                           "other": np.zeros(10**3)}, {})
    arrays, _ = serialize.load(data, expect_params())
    assert list(arrays) == ["params"]


def test_expect_sees_the_meta() -> None:
    data = serialize.dump({"w": np.zeros(4)}, {"n": 4})
    arrays, _ = serialize.load(data, lambda meta: {"w": ((meta["n"],), ("float64",))})
    assert arrays["w"].shape == (4,)


@pytest.mark.parametrize(("arrays", "match"), [
    ({"params": np.zeros((2, 3), np.float32)}, "shape"),
    ({"params": np.zeros(6, np.float32)}, "shape"),
    ({"params": np.zeros((3, 2), np.float64)}, "dtype"),
    ({"params": np.zeros((3, 2), np.complex64)}, "dtype"),
    ({"params": np.array([["a", "b"]] * 3)}, "dtype"),
    ({"weights": np.zeros((3, 2), np.float32)}, "no array 'params'"),
])
def test_unexpected_arrays_are_rejected(arrays: dict[str, np.ndarray], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        serialize.load(serialize.dump(arrays, {}), expect_params())


def test_object_arrays_are_rejected_without_unpickling() -> None:
    buf = io.BytesIO()
    np.savez(buf, meta=np.array("{}"), params=np.array([1.0, "x", None], dtype=object))
    with pytest.raises(ValueError, match="unsupported dtype object"):
        serialize.load(buf.getvalue(), lambda meta: {"params": ((3,), ("float32",))})


def test_object_meta_is_rejected() -> None:
    meta = io.BytesIO()
    np.save(meta, np.array([{"format": "x"}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="unsupported dtype object"):
        serialize.load(archive({}, meta.getvalue()), lambda meta: {})


def test_huge_declared_shape_is_rejected_before_reading() -> None:
    member = npy_member({"descr": "<f4", "fortran_order": False, "shape": (10**12,)})
    with pytest.raises(ValueError, match="shape"):
        serialize.load(archive({"params": member}), expect_params())


def test_truncated_array_data_is_rejected() -> None:
    member = npy_member({"descr": "<f4", "fortran_order": False, "shape": (3, 2)}, b"\0" * 20)
    with pytest.raises(ValueError, match="truncated"):
        serialize.load(archive({"params": member}), expect_params())


@pytest.mark.parametrize("blob", [b"", b"not a zip file", b"PK\x03\x04garbage",
                                  np.zeros(3).tobytes()])
def test_non_zip_blobs_are_rejected(blob: bytes) -> None:
    with pytest.raises(ValueError, match=r"not an \.npz archive"):
        serialize.load(blob, expect_params())


def test_meta_must_be_a_json_object() -> None:
    buf = io.BytesIO()
    np.save(buf, np.array("{not json"))
    with pytest.raises(ValueError, match="not JSON"):
        serialize.load(archive({}, buf.getvalue()), lambda meta: {})
    with pytest.raises(ValueError, match="JSON object"):
        serialize.load(archive({}, [1, 2]), lambda meta: {})
    buf = io.BytesIO()
    np.save(buf, np.arange(3))
    with pytest.raises(ValueError, match="meta"):
        serialize.load(archive({}, buf.getvalue()), lambda meta: {})


def test_missing_meta_is_rejected() -> None:
    buf = io.BytesIO()
    np.savez(buf, params=np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="no array 'meta'"):
        serialize.load(buf.getvalue(), expect_params())
