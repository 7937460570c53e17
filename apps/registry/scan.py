"""Static scan of pickle / joblib streams, and bounded decompression of joblib files (pure: no Django).

Nothing is unpickled here. ``scan_pickle_stream`` walks the opcodes with ``pickletools.genops`` and
runs a small symbolic stack machine: it knows which strings are on the stack and in the memo, so a
``STACK_GLOBAL`` is resolved to the exact (module, name) it would import, and every ``GLOBAL``,
``STACK_GLOBAL`` and ``INST`` is checked against the allowlist. Anything else — an unknown opcode,
persistent ids, the extension registry, out-of-band buffers, a ``STACK_GLOBAL`` whose operands are
not plain strings, a stack underflow, trailing garbage — is a rejection: "could not parse" never
means "allow".

joblib writes numpy arrays as a ``NumpyArrayWrapper`` object followed by the raw array bytes (or a
nested pickle stream for object arrays). The scanner evaluates the wrapper's state (dtype, shape) from
plain values only, skips exactly that many bytes (refusing sizes beyond the file) and scans nested
streams recursively.

``inflate_to`` decompresses joblib's compressed formats (zlib, gzip, bz2, lzma, xz, lz4) in bounded
chunks into a file and refuses a decompression bomb (output above an absolute limit or above
``max_ratio`` times the input) before expanding it.
"""

from __future__ import annotations

import bz2
import io
import lzma
import math
import pickletools
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from .allowlist import JOBLIB_ARRAY_WRAPPER, is_allowed_global


class ScanRejected(Exception):
    """The stream is not provably safe; the message says why (naming the global when there is one)."""


@dataclass
class ScanResult:
    globals: set[tuple[str, str]] = field(default_factory=set)
    opcodes: int = 0
    protocol: int = 0
    joblib_arrays: int = 0

    @property
    def is_joblib(self) -> bool:
        return self.joblib_arrays > 0 or JOBLIB_ARRAY_WRAPPER in self.globals


# --- symbolic values --------------------------------------------------------------------------


class _Mark:
    pass


MARK = _Mark()


class Opaque:
    """A value the scanner does not track (large bytes, results of calls it does not evaluate)."""


@dataclass(eq=False)
class Global:
    module: str
    name: str


@dataclass(eq=False)
class Instance:
    cls: Global
    args: object = None
    state: object = None


MAX_DEPTH = 1000  # nested MARKs
MAX_STACK = 1_000_000
MAX_MEMO = 5_000_000
MAX_OPCODES = 50_000_000
MAX_TRACKED_BYTES = 256  # bytes values longer than this become Opaque (the scanner never needs them)
MAX_NDIM = 64

_CONSTANT_OPS = {
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT",
    "STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8",
    "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8",
}


def _pop(stack: list, n: int = 1):
    if len(stack) < n:
        raise ScanRejected("Malformed pickle: stack underflow")
    items = stack[-n:]
    del stack[-n:]
    if any(i is MARK for i in items):
        raise ScanRejected("Malformed pickle: unexpected mark")
    return items if n > 1 else items[0]


def _pop_mark(stack: list, marks: list) -> list:
    if not marks:
        raise ScanRejected("Malformed pickle: no mark")
    start = marks.pop()
    if start < 1 or start > len(stack) or stack[start - 1] is not MARK:
        raise ScanRejected("Malformed pickle: lost mark")
    items = stack[start:]
    del stack[start - 1:]
    if any(i is MARK for i in items):
        raise ScanRejected("Malformed pickle: nested mark")
    return items


def _check_global(module, name, result: ScanResult) -> Global:
    if not isinstance(module, str) or not isinstance(name, str):
        raise ScanRejected("The pickle imports a global whose name is not a plain string: refused")
    if not is_allowed_global(module, name):
        raise ScanRejected(f"The pickle imports {module}.{name}, which is not on the allowlist")
    result.globals.add((module, name))
    return Global(module, name)


def _plain(value):
    """A plain Python value from symbolic values (tuples/lists/dicts of constants), or Opaque."""
    if isinstance(value, (str, int, float, bool, type(None), bytes)):
        return value
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, Instance) and value.cls.name == "dtype" and value.cls.module == "numpy":
        return _make_dtype(value)
    return Opaque()


def _make_dtype(inst: Instance):
    """A real numpy dtype from ``numpy.dtype(str, align, copy)`` + its pickled state.

    Only plain strings, numbers and nested dtypes are accepted; constructing a dtype runs no user code.
    """
    import numpy as np

    args = _plain(inst.args) if isinstance(inst.args, tuple) else None
    if not args or not isinstance(args[0], str) or len(args[0]) > 64:
        raise ScanRejected("Malformed joblib array: unreadable dtype")
    try:
        dtype = np.dtype(args[0])
        if inst.state is not None:
            state = _plain(inst.state)
            if not isinstance(state, tuple) or any(isinstance(s, Opaque) for s in _flatten(state)):
                raise ScanRejected("Malformed joblib array: unreadable dtype state")
            dtype.__setstate__(state)
    except ScanRejected:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure is a rejection
        raise ScanRejected(f"Malformed joblib array dtype: {exc}") from exc
    return dtype


def _flatten(value):
    if isinstance(value, (tuple, list)):
        for v in value:
            yield from _flatten(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _flatten(v)
    else:
        yield value


def _wrapper_layout(inst: Instance) -> tuple[int, bool, bool]:
    """(byte count, has_object, has_alignment_padding) of a joblib NumpyArrayWrapper from its state."""
    state = inst.state
    if not isinstance(state, dict):
        raise ScanRejected("Malformed joblib array wrapper")
    shape = _plain(state.get("shape"))
    dtype = state.get("dtype")
    if isinstance(dtype, Instance):
        dtype = _make_dtype(dtype)
    import numpy as np

    if not isinstance(dtype, np.dtype):
        raise ScanRejected("Malformed joblib array wrapper: no dtype")
    if not isinstance(shape, tuple) or len(shape) > MAX_NDIM or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise ScanRejected("Malformed joblib array wrapper: bad shape")
    count = math.prod(shape) if shape else 1
    padded = state.get("numpy_array_alignment_bytes") is not None
    return count * dtype.itemsize, bool(dtype.hasobject), padded


def _read_exact(stream: BinaryIO, n: int, limit_left: Callable[[], int]) -> None:
    if n > limit_left():
        raise ScanRejected("Malformed joblib file: an array is larger than the file")
    remaining = n
    while remaining:
        chunk = stream.read(min(remaining, 1 << 20))
        if not chunk:
            raise ScanRejected("Truncated joblib file: array data ends early")
        remaining -= len(chunk)


def scan_pickle_stream(stream: BinaryIO, *, total_size: int, result: ScanResult | None = None,
                       depth: int = 0) -> ScanResult:
    """Scan one pickle stream from ``stream``'s position to its STOP (see the module docstring).

    ``total_size`` is the stream's total length (bounds every skip). Raises ScanRejected.
    """
    result = result or ScanResult()
    if depth > 4:
        raise ScanRejected("Too many nested pickle streams")
    stack: list = []
    marks: list[int] = []
    memo: dict[int, object] = {}
    pending_wrapper: Instance | None = None

    def left() -> int:
        return total_size - stream.tell()

    try:
        ops = pickletools.genops(stream)
        for opcode, arg, _pos in ops:
            result.opcodes += 1
            if result.opcodes > MAX_OPCODES:
                raise ScanRejected("The pickle has too many opcodes")
            name = opcode.name
            if name in _CONSTANT_OPS:
                if isinstance(arg, (bytes, bytearray)) and len(arg) > MAX_TRACKED_BYTES:
                    stack.append(Opaque())
                elif isinstance(arg, bytearray):
                    stack.append(bytes(arg))
                else:
                    stack.append(arg)
            elif name == "NONE":
                stack.append(None)
            elif name == "NEWTRUE":
                stack.append(True)
            elif name == "NEWFALSE":
                stack.append(False)
            elif name == "PROTO":
                if arg > 5:
                    raise ScanRejected(f"Unsupported pickle protocol {arg}")
                result.protocol = max(result.protocol, arg)
            elif name == "FRAME":
                pass
            elif name == "STOP":
                if len(stack) != 1 or marks:
                    raise ScanRejected("Malformed pickle: the stream does not end with one object")
                break
            elif name == "EMPTY_LIST":
                stack.append([])
            elif name == "EMPTY_DICT":
                stack.append({})
            elif name in ("EMPTY_TUPLE",):
                stack.append(())
            elif name == "EMPTY_SET":
                stack.append([])
            elif name == "MARK":
                if len(marks) >= MAX_DEPTH:
                    raise ScanRejected("The pickle nests too deeply")
                stack.append(MARK)
                marks.append(len(stack))
            elif name == "POP_MARK":
                _pop_mark(stack, marks)
            elif name == "TUPLE":
                stack.append(tuple(_pop_mark(stack, marks)))
            elif name == "TUPLE1":
                stack.append((_pop(stack),))
            elif name == "TUPLE2":
                stack.append(tuple(_pop(stack, 2)))
            elif name == "TUPLE3":
                stack.append(tuple(_pop(stack, 3)))
            elif name == "LIST":
                stack.append(list(_pop_mark(stack, marks)))
            elif name == "DICT":
                items = _pop_mark(stack, marks)
                stack.append(_to_dict(items))
            elif name == "FROZENSET":
                _pop_mark(stack, marks)
                stack.append(Opaque())
            elif name == "APPEND":
                value = _pop(stack)
                target = _top(stack)
                if isinstance(target, list):
                    target.append(value)
            elif name in ("APPENDS", "ADDITEMS"):
                items = _pop_mark(stack, marks)
                target = _top(stack)
                if isinstance(target, list):
                    target.extend(items)
            elif name == "SETITEM":
                key, value = _pop(stack, 2)
                target = _top(stack)
                if isinstance(target, dict) and _hashable(key):
                    target[key] = value
            elif name == "SETITEMS":
                items = _pop_mark(stack, marks)
                target = _top(stack)
                if isinstance(target, dict):
                    target.update(_to_dict(items))
            elif name == "POP":
                if stack and stack[-1] is MARK:
                    _pop_mark(stack, marks)
                else:
                    _pop(stack)
            elif name == "DUP":
                stack.append(_top(stack))
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                if len(memo) >= MAX_MEMO:
                    raise ScanRejected("The pickle memo is too large")
                memo[int(arg)] = _top(stack)
            elif name == "MEMOIZE":
                if len(memo) >= MAX_MEMO:
                    raise ScanRejected("The pickle memo is too large")
                memo[len(memo)] = _top(stack)
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                key = int(arg)
                if key not in memo:
                    raise ScanRejected("Malformed pickle: memo key missing")
                stack.append(memo[key])
            elif name == "GLOBAL":
                module, _, gname = str(arg).partition(" ")
                stack.append(_check_global(module, gname, result))
            elif name == "STACK_GLOBAL":
                module, gname = _pop(stack, 2)
                stack.append(_check_global(module, gname, result))
            elif name == "INST":
                module, _, gname = str(arg).partition(" ")
                cls = _check_global(module, gname, result)
                args = tuple(_pop_mark(stack, marks))
                stack.append(Instance(cls, args))
            elif name == "OBJ":
                items = _pop_mark(stack, marks)
                if not items or not isinstance(items[0], Global):
                    raise ScanRejected("Malformed pickle: OBJ without a class")
                stack.append(Instance(items[0], tuple(items[1:])))
            elif name in ("REDUCE", "NEWOBJ"):
                func, args = _pop(stack, 2)
                if not isinstance(func, Global):
                    raise ScanRejected(f"The pickle calls something that is not an allowed global ({name})")
                stack.append(Instance(func, args))
            elif name == "NEWOBJ_EX":
                cls, args, _kwargs = _pop(stack, 3)
                if not isinstance(cls, Global):
                    raise ScanRejected("The pickle calls something that is not an allowed global (NEWOBJ_EX)")
                stack.append(Instance(cls, args))
            elif name == "BUILD":
                state = _pop(stack)
                target = _top(stack)
                if isinstance(target, Instance):
                    target.state = state
                    if (target.cls.module, target.cls.name) == JOBLIB_ARRAY_WRAPPER:
                        pending_wrapper = target
                elif not isinstance(target, (Global, Opaque)):
                    raise ScanRejected("Malformed pickle: BUILD on a plain value")
            elif name in ("PERSID", "BINPERSID"):
                raise ScanRejected("The pickle uses persistent ids, which are not allowed")
            elif name in ("EXT1", "EXT2", "EXT4"):
                raise ScanRejected("The pickle uses the copyreg extension registry, which is not allowed")
            elif name in ("NEXT_BUFFER", "READONLY_BUFFER"):
                raise ScanRejected("The pickle needs out-of-band buffers, which are not allowed")
            else:
                raise ScanRejected(f"Unsupported pickle opcode {name}")
            if len(stack) > MAX_STACK:
                raise ScanRejected("The pickle stack is too large")
            if pending_wrapper is not None:
                # joblib: the array's bytes (or a nested pickle of an object array) follow the BUILD.
                wrapper, pending_wrapper = pending_wrapper, None
                result.joblib_arrays += 1
                nbytes, has_object, padded = _wrapper_layout(wrapper)
                if has_object:
                    scan_pickle_stream(stream, total_size=total_size, result=result, depth=depth + 1)
                else:
                    if padded:
                        pad = stream.read(1)
                        if len(pad) != 1:
                            raise ScanRejected("Truncated joblib file")
                        _read_exact(stream, pad[0], left)
                    _read_exact(stream, nbytes, left)
        else:
            raise ScanRejected("Truncated pickle: no STOP opcode")
    except ScanRejected:
        raise
    except RecursionError as exc:
        raise ScanRejected("The pickle nests too deeply") from exc
    except (ValueError, EOFError, TypeError, KeyError, IndexError, OverflowError, UnicodeDecodeError,
            MemoryError) as exc:
        raise ScanRejected(f"The file is not a readable pickle stream ({exc.__class__.__name__}: {exc})") from exc
    return result


def _top(stack: list):
    if not stack or stack[-1] is MARK:
        raise ScanRejected("Malformed pickle: stack underflow")
    return stack[-1]


def _hashable(key) -> bool:
    try:
        hash(key)
    except TypeError:
        return False
    return not isinstance(key, Opaque)


def _to_dict(items: list) -> dict:
    if len(items) % 2:
        raise ScanRejected("Malformed pickle: odd number of dict items")
    out = {}
    for k, v in zip(items[::2], items[1::2], strict=True):
        if _hashable(k):
            out[k] = v
    return out


def scan_file(path, *, size: int | None = None) -> ScanResult:
    """Scan a (decompressed) pickle or joblib file; the whole file must be one pickle stream."""
    import os

    size = os.path.getsize(path) if size is None else size
    if size == 0:
        raise ScanRejected("The file is empty")
    with open(path, "rb") as fh:
        result = scan_pickle_stream(fh, total_size=size)
        if fh.read(1):
            raise ScanRejected("Trailing data after the pickle stream: refused")
    return result


def scan_bytes(data: bytes) -> ScanResult:
    stream = io.BytesIO(data)
    result = scan_pickle_stream(stream, total_size=len(data))
    if stream.read(1):
        raise ScanRejected("Trailing data after the pickle stream: refused")
    return result


# --- compression ------------------------------------------------------------------------------

COMPRESSION_MAGIC = [
    ("gzip", b"\x1f\x8b"),
    ("xz", b"\xfd7zXZ\x00"),
    ("lzma", b"]\x00\x00"),
    ("lz4", b"\x04\x22\x4d\x18"),
    ("bz2", b"BZh"),
    ("zlib", b"\x78"),
]


def detect_compression(head: bytes) -> str | None:
    """joblib's compressed formats, by their magic bytes (zlib: a valid 2-byte zlib header)."""
    for name, magic in COMPRESSION_MAGIC:
        if name == "zlib":
            if len(head) >= 2 and head[0] == 0x78 and ((head[0] << 8) | head[1]) % 31 == 0:
                return "zlib"
        elif head.startswith(magic):
            if name == "bz2" and (len(head) < 4 or head[3:4] not in b"123456789"):
                continue
            return name
    return None


class InflateRefused(ScanRejected):
    pass


def _decompressor(kind: str):
    if kind == "zlib":
        return zlib.decompressobj()
    if kind == "gzip":
        return zlib.decompressobj(wbits=31)
    if kind == "bz2":
        return bz2.BZ2Decompressor()
    if kind in ("lzma", "xz"):
        return lzma.LZMADecompressor(format=lzma.FORMAT_ALONE if kind == "lzma" else lzma.FORMAT_XZ,
                                     memlimit=256 * 1024 * 1024)
    if kind == "lz4":
        try:
            import lz4.frame
        except ImportError as exc:
            raise InflateRefused("lz4-compressed joblib files are not supported on this server; "
                                 "save with joblib.dump(model, path, compress=3) (zlib) instead") from exc
        return lz4.frame.LZ4FrameDecompressor()
    raise InflateRefused(f"Unknown compression {kind}")


def inflate_to(src: BinaryIO, dest: BinaryIO, *, kind: str, input_size: int, max_bytes: int,
               max_ratio: float) -> int:
    """Decompress ``src`` into ``dest`` in bounded steps (at most 1 MiB of output per call); refuse
    output above min(max_bytes, max_ratio * input_size) before producing more. Returns the size."""
    limit = int(min(max_bytes, max(max_ratio * input_size, 1 << 20)))
    d = _decompressor(kind)
    zlib_like = kind in ("zlib", "gzip")
    step = 1 << 20
    out = 0
    try:
        while not d.eof:
            data = src.read(step)
            if not data:
                break
            pending = data
            while True:
                if zlib_like:
                    produced = d.decompress(pending or d.unconsumed_tail, step)
                else:
                    produced = d.decompress(pending, max_length=step)
                pending = b""
                out += len(produced)
                if out > limit:
                    raise InflateRefused(
                        f"The compressed file expands beyond the limit of {limit:,} bytes "
                        f"({max_ratio:g} times its size, at most {max_bytes:,}): refused as a decompression bomb")
                dest.write(produced)
                if d.eof:
                    break
                more = (bool(d.unconsumed_tail) or len(produced) == step) if zlib_like else not d.needs_input
                if not more:
                    break
    except InflateRefused:
        raise
    except (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError, RuntimeError) as exc:
        raise InflateRefused(f"The compressed file is corrupt ({exc})") from exc
    if not d.eof:
        raise InflateRefused("The compressed file is truncated")
    return out
