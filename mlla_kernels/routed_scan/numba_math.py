"""Vectorizable float32 math and the jit decorator of the numba engine.

PyPI's llvmlite has no vector math library, so ``math.exp``/``log1p`` in a loop are scalar
calls that stop LLVM from vectorizing it. The float32 kernels use polynomial
``exp2``/``exp``/``log1p`` written as plain arithmetic (error <= 3e-7 relative, at the level of
fp32 rounding of their argument); float64 (kept for verification: gradcheck) uses the exact
library functions.

Compiled code is cached on disk once per machine (:mod:`mlla_kernels.numba_cache`: a per-user
folder keyed by the engine's source content, so a new clone or install loads it); where no
cache location is writable the kernels compile in memory once per process.
``MLLA_KERNELS_NUMBA_CACHE=0`` turns the disk cache off.
"""
import math
import os
import warnings

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from ..numba_cache import enable_machine_cache

F32 = np.float32

CACHE_ENV = 'MLLA_KERNELS_NUMBA_CACHE'


def _cache_wanted() -> bool:
    return os.environ.get(CACHE_ENV, '1').strip().lower() not in ('0', 'false', 'no', 'off')


_CACHE_WARNED = []


def jit(inline=False):
    """njit with fastmath, releasing the GIL; disk-cached where a location is writable.
    ``inline``: inline into the caller at numba's level (so that its reference counting of
    the arrays it takes from named tuples is pruned with the caller's)."""
    options = dict(fastmath=True, nogil=True, error_model='numpy')
    if inline:
        options['inline'] = 'always'

    def decorate(fn):
        kernel = njit(cache=False, **options)(fn)
        if _cache_wanted():
            try:
                return enable_machine_cache(kernel)
            except RuntimeError as err:  # numba: "cannot cache function ...: no locator"
                if not _CACHE_WARNED:
                    _CACHE_WARNED.append(fn.__name__)
                    warnings.warn(f'mlla_kernels: numba cannot cache the compiled kernels on '
                                  f'disk ({err}); they will be compiled once per process. Set '
                                  f'NUMBA_CACHE_DIR to a writable folder to keep them.',
                                  stacklevel=2)
        return kernel
    return decorate


@intrinsic
def _bits_as_float32(typingctx, bits):
    """Reinterpret the low 32 bits of an integer as a float32 (a vectorizable bitcast)."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        value = args[0]
        if bits.bitwidth > 32:
            value = builder.trunc(value, ir.IntType(32))
        return builder.bitcast(value, ir.FloatType())
    return types.float32(bits), codegen


@intrinsic
def prefetch(typingctx, arr, index):
    """Ask the CPU to bring ``arr[index]``'s cache line in (no effect on results): rows the
    kernels gather through a route table are out of the hardware prefetchers' reach."""
    if not isinstance(arr, types.Array) or not isinstance(index, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        byte_ptr = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_ptr, i32, i32, i32]),
            'llvm.prefetch.p0')
        address = builder.bitcast(builder.gep(array.data, [args[1]]), byte_ptr)
        builder.call(fn, [address, i32(0), i32(3), i32(1)])   # read, keep in all levels, data
        return context.get_dummy_value()
    return types.none(arr, index), codegen


_LOG2E = F32(1.4426950408889634)
LOG2E_64 = 1.4426950408889634  # scales A (stored in the compute dtype)
_LN2_HI = F32(0.693359375)          # ln 2 = _LN2_HI + _LN2_LO; _LN2_HI has 9 significant bits
_LN2_LO = F32(-2.12194440e-4)
_HALF = F32(0.5)
ONE = F32(1.0)
_TWO = F32(2.0)
ZERO = F32(0.0)
_EXP2_MIN = F32(-127.0)             # 2^-127 and below -> exactly 0 (bits of k = -127 are 0)
_EXP2_MAX = F32(127.0)
_EXP_MIN = F32(-88.0)
_EXP_MAX = F32(88.0)
_BIAS = np.int32(127)
_MANT = np.int32(23)
# 2^f on [-1/2, 1/2], degree 6 least squares in relative error: 1e-7 relative in fp32.
_P2 = tuple(F32(c) for c in (0.00015337585110318804, 0.0013399869912467171,
                             0.00961851959091269, 0.05550328974000945, 0.2402264660737268,
                             0.6931472056112569))
# e^r on [-ln2/2, ln2/2] (r = x - k ln2), degree 6: 8e-8 relative in fp32.
_PE = tuple(F32(c) for c in (0.001375140818041099, 0.008368919081647762,
                             0.041669533395562855, 0.16666518437203998,
                             0.49999988592958267))
# atanh(s)/s as a polynomial in q = s^2 on [0, 1/9] (s = e/(2+e), e in [0, 1]).
_PL = tuple(F32(c) for c in (0.1408733287062677, 0.13980713183962998, 0.20012426145660145,
                             0.333331580020551, 1.0000000039349635))


@jit()
def _exp2_f32(t):
    """2**t in float32: t = k + f (k integer, |f| <= 1/2), 2**f by polynomial, 2**k by bits."""
    t = min(max(t, _EXP2_MIN), _EXP2_MAX)
    k = np.floor(t + _HALF)
    f = t - k
    p = (((((_P2[0] * f + _P2[1]) * f + _P2[2]) * f + _P2[3]) * f + _P2[4]) * f
         + _P2[5]) * f + ONE
    return p * _bits_as_float32((np.int32(k) + _BIAS) << _MANT)


@jit()
def _exp_f32(x):
    """e**x in float32 to ~1 ulp: Cody-Waite reduction by ln 2, then a polynomial."""
    x = min(max(x, _EXP_MIN), _EXP_MAX)
    k = np.floor(x * _LOG2E + _HALF)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    p = ((((((_PE[0] * r + _PE[1]) * r + _PE[2]) * r + _PE[3]) * r + _PE[4]) * r + ONE) * r
         + ONE)
    return p * _bits_as_float32((np.int32(k) + _BIAS) << _MANT)


@jit()
def _log1p_unit_f32(e):
    """log(1 + e) for e in [0, 1]: 2 atanh(s) with s = e / (2 + e) <= 1/3."""
    s = e / (_TWO + e)
    q = s * s
    return _TWO * s * ((((_PL[0] * q + _PL[1]) * q + _PL[2]) * q + _PL[3]) * q + _PL[4])


def exp2(t):
    """2**t (float32: polynomial; float64: libm)."""


def exp(x):
    """e**x (float32: polynomial; float64: libm)."""


def log1p_unit(e):
    """log(1 + e) for 0 <= e <= 1 (float32: polynomial; float64: libm)."""


@overload(exp2, fastmath=True)
def _exp2_overload(t):
    if t == types.float32:
        return lambda t: _exp2_f32(t)
    return lambda t: np.exp2(t)


@overload(exp, fastmath=True)
def _exp_overload(x):
    if x == types.float32:
        return lambda x: _exp_f32(x)
    return lambda x: math.exp(x)


@overload(log1p_unit, fastmath=True)
def _log1p_overload(e):
    if e == types.float32:
        return lambda e: _log1p_unit_f32(e)
    return lambda e: math.log1p(e)


@jit()
def softplus(x):
    """log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow, full relative accuracy."""
    return max(x, ZERO) + log1p_unit(exp(-abs(x)))


@jit()
def sigmoid(x):
    """1 / (1 + e^-x), from e = e^-|x| so that neither tail loses precision."""
    e = exp(-abs(x))
    r = ONE / (ONE + e)
    return r if x >= ZERO else e * r
