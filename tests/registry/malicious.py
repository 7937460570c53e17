"""Malicious pickle payloads for the registry's safety tests. Each would create ``marker`` if executed."""

import builtins
import io
import os
import pickle
import subprocess
import zlib

import joblib


class OsSystem:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class BuiltinsEval:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (builtins.eval, (f"open({self.marker!r}, 'w').write('x')",))


class SubprocessPopen:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (subprocess.Popen, (["touch", self.marker],))


def os_system_pickle(marker, protocol=4) -> bytes:
    return pickle.dumps(OsSystem(marker), protocol=protocol)


def eval_pickle(marker, protocol=4) -> bytes:
    return pickle.dumps(BuiltinsEval(marker), protocol=protocol)


def subprocess_pickle(marker, protocol=4) -> bytes:
    return pickle.dumps(SubprocessPopen(marker), protocol=protocol)


def pipeline_step_pickle(marker, protocol=4) -> bytes:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return pickle.dumps(Pipeline([("scale", StandardScaler()), ("evil", OsSystem(marker))]), protocol=protocol)


def compressed_joblib(marker, compress=3) -> bytes:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    buf = io.BytesIO()
    joblib.dump(Pipeline([("scale", StandardScaler()), ("evil", OsSystem(marker))]), buf, compress=compress)
    return buf.getvalue()


def memo_stack_global(marker) -> bytes:
    """Hand-written protocol 4 stream: the module and name strings are memoized and fetched back with
    BINGET before STACK_GLOBAL, so a scanner that only looks at the previous two pushes is fooled."""
    cmd = f"touch {marker}".encode()
    return (b"\x80\x04"
            + b"\x8c\x05posix\x94"      # push 'posix', MEMOIZE -> 0
            + b"\x8c\x06system\x94"     # push 'system', MEMOIZE -> 1
            + b"\x8c\x05numpy\x8c\x07ndarray"  # decoys on the stack
            + b"0" + b"0"               # POP, POP
            + b"h\x00h\x01"             # BINGET 0, BINGET 1
            + b"\x93"                   # STACK_GLOBAL -> posix.system
            + b"\x8c" + bytes([len(cmd)]) + cmd + b"\x85R.")


def zlib_bomb(size=64 * 1024 * 1024) -> bytes:
    """A zlib stream (joblib's compress=True format) that inflates to ``size`` bytes of a pickle prefix + zeros."""
    comp = zlib.compressobj(9)
    out = [comp.compress(b"\x80\x04")]
    block = b"\x00" * (1 << 20)
    for _ in range(size // len(block)):
        out.append(comp.compress(block))
    out.append(comp.flush())
    return b"".join(out)
