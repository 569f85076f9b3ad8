"""CSV uploads, parsed as a stream: the body is decoded and read row by row straight into the
float arrays, so memory is the arrays (plus one block of rows), not several copies of the text.

A header row names the columns; ``target`` names one or more (comma-separated) target columns.
All-numeric targets mean regression; otherwise the one target column holds class labels.
"""

from __future__ import annotations

import csv
import io
import math
from array import array
from typing import IO

import numpy as np
from pydantic import ValidationError

from .config import Limits
from .datasets import Parsed, _check_shape, _classes
from .errors import invalid, too_large, validation_problem
from .schemas import DatasetCsvQuery

BLOCK_ROWS = 65536  # rows converted to a float block at a time


def _text_error(loc: list[str | int], what: str, value: str, limits: Limits) -> None:
    if "\x00" in value:
        raise invalid(loc, f"{what} contains the NUL character (U+0000), which cannot be stored")
    if len(value) > limits.max_name_chars:
        raise invalid(loc, f"{what} is {len(value)} characters long, more than "
                      f"{limits.max_name_chars}")


def _query(name: str | None, target: str | None) -> DatasetCsvQuery:
    try:
        query = DatasetCsvQuery.model_validate({"name": name, "target": target})
    except ValidationError as exc:
        raise validation_problem(exc, ["query"]) from None
    if not query.name:
        raise invalid(["query", "name"], "a CSV upload needs ?name=...")
    if not query.target:
        raise invalid(["query", "target"], "a CSV upload needs ?target=<column>[,<column>...]")
    return query


def _bad_cell(line_no: int, column: str, value: str) -> None:
    raise invalid(["body", line_no, column], f"line {line_no}, column {column!r}: {value!r} is "
                  "not a finite number (input columns must be numeric)")


def from_csv(body: IO[bytes] | bytes, name: str | None, target: str | None,
             limits: Limits) -> Parsed:
    """Parse a CSV upload from a binary stream (or bytes)."""
    query = _query(name, target)
    stream = io.BytesIO(body) if isinstance(body, bytes | bytearray) else body
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")  # type: ignore[arg-type]
    reader = csv.reader(text)
    line_no = 1
    try:
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise invalid(["body"], "the CSV is empty; it needs a header row") from None
        f_idx, t_idx, targets = _columns(header, query.target or "", limits)
        X_blocks: list[np.ndarray] = []
        rows_x: list[list[float]] = []
        lines: list[int] = []  # the line of each row of the block, for error messages
        numeric: array[float] | None = array("d")  # targets while every one is a number
        codes: array[int] | None = array("q")  # label index of each row (one target column)
        seen: dict[str, int] = {}  # label -> its code, in order of first appearance
        first_line: list[int] = []  # the line where each label first appears
        n = 0
        single = len(t_idx) == 1
        for row in reader:
            line_no = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise invalid(["body", line_no], f"line {line_no} has {len(row)} fields but "
                              f"the header has {len(header)}")
            n += 1
            if n > limits.max_rows:
                raise too_large("MAX_ROWS", f"the CSV has more than {limits.max_rows} rows",
                                ["body"])
            try:
                rows_x.append([float(row[j]) for j in f_idx])
            except ValueError:
                j = next(j for j in f_idx if _float(row[j]) is None)
                _bad_cell(line_no, header[j], row[j])
            lines.append(line_no)
            if numeric is not None:
                try:
                    numeric.extend(float(row[j]) for j in t_idx)
                except ValueError:
                    numeric = None
            if codes is not None and single:
                label = row[t_idx[0]].strip()
                code = seen.get(label)
                if code is None:
                    code = seen[label] = len(seen)
                    first_line.append(line_no)
                    if len(seen) > limits.max_outputs:
                        codes = None  # too many classes for classification: numbers or nothing
                if codes is not None:
                    codes.append(code)
            if numeric is None and (codes is None or not single):
                raise _target_problem(single, targets, limits)
            if len(rows_x) == BLOCK_ROWS:
                X_blocks.append(_block(rows_x, lines, header, f_idx))
                rows_x, lines = [], []
        if rows_x:
            X_blocks.append(_block(rows_x, lines, header, f_idx))
    except csv.Error as exc:
        raise invalid(["body"], f"the CSV is malformed at line {line_no}: {exc}") from None
    except UnicodeDecodeError:
        raise invalid(["body"], f"the CSV is not UTF-8 (after line {line_no})") from None
    finally:
        text.detach()
    if not n:
        raise invalid(["body"], "the CSV has a header but no data rows")
    X = X_blocks[0] if len(X_blocks) == 1 else np.concatenate(X_blocks)
    del X_blocks
    feature_names = [header[j] for j in f_idx]
    if numeric is not None:
        Y = np.frombuffer(numeric, dtype=np.float64).reshape(n, len(t_idx)).copy()
        if np.isfinite(Y).all():
            return Parsed(query.name or "", X, Y, None, feature_names, targets)
    if not single or codes is None:
        raise _target_problem(single, targets, limits)
    uniques = list(seen)
    for label, line in zip(uniques, first_line, strict=True):
        loc: list[str | int] = ["body", line, targets[0]]
        if not label:
            raise invalid(loc, f"line {line}: the label is empty")
        _text_error(loc, f"line {line}: the label", label, limits)
    classes, order = _classes(uniques, ["body", targets[0]])
    idx = order[np.frombuffer(codes, dtype=np.int64)]
    _check_shape(n, len(f_idx), len(classes), limits, "body")
    return Parsed(query.name or "", X, idx, classes, feature_names, targets)


def _target_problem(single: bool, targets: list[str], limits: Limits) -> Exception:
    if not single:
        return invalid(["query", "target"], "a non-numeric target column means "
                       "classification, which takes exactly one target column")
    return too_large("MAX_OUTPUTS", f"the target column {targets[0]!r} is not numeric and has "
                     f"more than {limits.max_outputs} distinct labels (classes)", ["body"])


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _block(rows: list[list[float]], lines: list[int], header: list[str],
           f_idx: list[int]) -> np.ndarray:
    block = np.array(rows, dtype=np.float64)
    bad = ~np.isfinite(block)
    if bad.any():
        r, c = map(int, np.argwhere(bad)[0])
        raise invalid(["body", lines[r], header[f_idx[c]]],
                      f"line {lines[r]}, column {header[f_idx[c]]!r}: {block[r, c]!r} is not a "
                      "finite number (input columns must be numeric)")
    return block


def _columns(header: list[str], target: str, limits: Limits,
             ) -> tuple[list[int], list[int], list[str]]:
    """Input column indices, target column indices and target names, checked."""
    seen: set[str] = set()
    for i, h in enumerate(header):
        if not h:
            raise invalid(["body", "header"], f"column {i + 1} has an empty name")
        _text_error(["body", "header"], f"the name of column {i + 1}", h, limits)
        if h in seen:
            raise invalid(["body", "header"], f"the column name {h!r} appears twice")
        seen.add(h)
    targets = [t.strip() for t in target.split(",")]
    for t in targets:
        if t not in seen:
            raise invalid(["query", "target"], f"no column {t!r}; the columns are {header}")
    if len(set(targets)) != len(targets):
        raise invalid(["query", "target"], "a target column is named twice")
    t_idx = [header.index(t) for t in targets]
    f_idx = [i for i in range(len(header)) if i not in t_idx]
    if not f_idx:
        raise invalid(["query", "target"], "no input columns are left besides the targets")
    _check_shape(0, len(f_idx), len(t_idx), limits, "body")
    return f_idx, t_idx, targets
