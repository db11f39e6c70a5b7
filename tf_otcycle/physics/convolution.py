"""Same-size convolution with a PSF and its adjoint, 2-D or 3-D, on TensorFlow tensors.

Conventions:

* ``x`` is channels-last ``(B, *spatial, C)`` float32 with 2 or 3 spatial axes; every
  channel is blurred by the same PSF ``h`` of shape ``kernel`` (one size per spatial axis).
* :func:`convolve` is the true convolution ``(h * x)[i] = sum_j h[j] x[i - j + c]`` with the
  PSF's optical axis at ``c = kernel // 2`` (the convention of :mod:`tf_otcycle.physics.psf`
  and ``fftshift``), zero boundary, output the size of ``x``: a point source stays in place.
* :func:`convolve_adjoint` is its adjoint (transpose), ``sum_j h[j] y[i + j - c]``, so that
  ``<h * x, y> = <x, convolve_adjoint(y, h)>`` exactly.

Both are one cross-correlation with an offset: ``'fft'`` (zero-padded complex FFTs; TF's
``irfft3d`` has no gradient) or ``'direct'`` (``tf.nn.convolution``; its backward pass is
slow for large kernels).
"""

from __future__ import annotations

from collections.abc import Sequence

import tensorflow as tf

IMPLEMENTATIONS = ("fft", "direct")
SYMMETRIES = ("none", "lateral")


def good_fft_size(n: int) -> int:
    """Smallest ``2^a 3^b 5^c >= n`` (sizes the FFT handles fast)."""
    m = n
    while True:
        r = m
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1:
            return m
        m += 1


def convolve(x: tf.Tensor, psf: tf.Tensor, implementation: str = "fft") -> tf.Tensor:
    """``h * x`` centred at ``kernel // 2``; ``x (B, *spatial, C)``, ``psf`` ``kernel``-shaped."""
    psf = tf.convert_to_tensor(psf, tf.float32)
    flipped = tf.reverse(psf, axis=list(range(psf.shape.rank)))
    return _correlate(x, flipped, [(k - 1) // 2 for k in psf.shape], implementation)


def convolve_adjoint(y: tf.Tensor, psf: tf.Tensor, implementation: str = "fft") -> tf.Tensor:
    """The adjoint of :func:`convolve`: correlation with ``h``, same shapes."""
    psf = tf.convert_to_tensor(psf, tf.float32)
    return _correlate(y, psf, [k // 2 for k in psf.shape], implementation)


def lateral_symmetric(psf: tf.Tensor) -> tf.Tensor:
    """The mean of ``psf`` over the symmetries of a widefield PSF about its optical axis.

    ``psf``: ``(..., kh, kw)`` float32 (``(kd, kh, kw)`` or ``(kh, kw)``), the axis at
    ``(kh // 2, kw // 2)``. The mean is taken over the reflections of the last two (lateral)
    axes about the axis and, where ``kh == kw``, their exchange: the dihedral group of the
    square (8 elements; 4 on a rectangle), which an aberration-free widefield PSF is invariant
    under. On an even axis the first plane has no mirror inside the kernel and is set to zero,
    so the result is exactly symmetric and :func:`convolve` with it commutes with the lateral
    flips (and quarter turns on a square kernel) of ``x``. The sum is preserved, less that plane's.
    """
    psf = tf.convert_to_tensor(psf, tf.float32)
    if psf.shape.rank is None or psf.shape.rank < 2:
        raise ValueError(f"psf: expected at least 2 axes (..., kh, kw), got shape {psf.shape}")
    rank = psf.shape.rank
    for axis in (rank - 2, rank - 1):
        psf = _reflection_mean(psf, axis)
    if psf.shape[-1] == psf.shape[-2]:
        psf = 0.5 * (psf + tf.linalg.matrix_transpose(psf))
    return psf


def _reflection_mean(psf: tf.Tensor, axis: int) -> tf.Tensor:
    """``(psf + its reflection about voxel n // 2 on axis)/2``; an unpaired first plane (even n) -> 0."""
    n = psf.shape[axis]
    if n % 2 == 0:
        shape = [1] * psf.shape.rank
        shape[axis] = n
        psf = psf * tf.reshape(tf.constant([0.0] + [1.0] * (n - 1)), shape)
    mirror = [(2 * (n // 2) - i) % n for i in range(n)]  # i -> 2c - i; the zeroed plane maps onto itself
    return 0.5 * (psf + tf.gather(psf, mirror, axis=axis))


def _correlate(x: tf.Tensor, kernel: tf.Tensor, before: Sequence[int], implementation: str) -> tf.Tensor:
    """``out[i] = sum_j kernel[j] x[i + j - before]`` (zero outside ``x``), same size as ``x``."""
    x = tf.convert_to_tensor(x, tf.float32)
    ndim = kernel.shape.rank
    if ndim not in (2, 3):
        raise ValueError(f"psf: expected a 2-D or 3-D kernel, got shape {kernel.shape}")
    if x.shape.rank != ndim + 2:
        axes = "B, D, H, W, C" if ndim == 3 else "B, H, W, C"
        raise ValueError(f"x: expected shape ({axes}) for a {ndim}-D PSF, got {x.shape}")
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation: expected one of {IMPLEMENTATIONS}, got {implementation!r}")
    sizes = list(kernel.shape)
    if implementation == "direct":
        return _direct(x, kernel, before)
    return _fft(x, kernel, sizes, before)


def _direct(x, kernel, before):
    ndim = kernel.shape.rank
    shape = tf.shape(x)
    xb = tf.reshape(tf.transpose(x, [0, ndim + 1, *range(1, ndim + 1)]), tf.concat([[-1], shape[1:-1], [1]], 0))
    pads = [[0, 0]] + [[b, k - 1 - b] for b, k in zip(before, kernel.shape)] + [[0, 0]]
    conv = tf.nn.conv2d if ndim == 2 else tf.nn.conv3d
    y = conv(tf.pad(xb, pads), kernel[..., None, None], strides=[1] * (ndim + 2), padding="VALID")
    y = tf.reshape(y, tf.concat([shape[:1], shape[-1:], shape[1:-1]], 0))
    return tf.transpose(y, [0, *range(2, ndim + 2), 1])


def _fft_lengths(sizes: Sequence, ksizes: Sequence[int]) -> list:
    """Zero-padded FFT lengths making the circular correlation linear (fast sizes when static)."""
    return [good_fft_size(n + k - 1) if isinstance(n, int) else n + k - 1 for n, k in zip(sizes, ksizes)]


def _spatial_sizes(x: tf.Tensor, ndim: int) -> list:
    static, dyn = x.shape, tf.shape(x)
    return [static[i + 1] if static[i + 1] is not None else dyn[i + 1] for i in range(ndim)]


def _kernel_spectrum(kernel: tf.Tensor, ksizes: Sequence[int], lengths: Sequence) -> tf.Tensor:
    kp = tf.pad(kernel, [[0, ln - k] for ln, k in zip(lengths, ksizes)])
    fft = tf.signal.fft2d if len(ksizes) == 2 else tf.signal.fft3d
    return fft(tf.complex(kp, tf.zeros_like(kp)))


def _correlate_spectrum(x, kf, sizes, lengths, before):
    """``_correlate`` given the kernel's zero-padded spectrum ``kf``."""
    ndim = len(sizes)
    xt = tf.transpose(x, [0, ndim + 1, *range(1, ndim + 1)])  # (B, C, *spatial)
    pads = [[0, 0], [0, 0]] + [[b, ln - n - b] for b, ln, n in zip(before, lengths, sizes)]
    xp = tf.pad(xt, pads)
    fft, ifft = (tf.signal.fft2d, tf.signal.ifft2d) if ndim == 2 else (tf.signal.fft3d, tf.signal.ifft3d)
    xf = fft(tf.complex(xp, tf.zeros_like(xp)))
    y = tf.math.real(ifft(xf * tf.math.conj(kf)))  # circular correlation; the padding makes it linear
    y = y[(slice(None), slice(None), *(slice(0, n) for n in sizes))]
    return tf.transpose(y, [0, *range(2, ndim + 2), 1])


def _fft(x, kernel, ksizes, before):
    sizes = _spatial_sizes(x, kernel.shape.rank)
    lengths = _fft_lengths(sizes, ksizes)
    return _correlate_spectrum(x, _kernel_spectrum(kernel, ksizes, lengths), sizes, lengths, before)


def fixed_kernel(psf: tf.Tensor, spatial: Sequence[int]):
    """:func:`convolve` and :func:`convolve_adjoint` with one PSF on inputs of one static
    spatial shape, the PSF's spectrum computed once (for iterative solvers).

    Returns:
        ``(blur, blur_adjoint)``, each ``(B, *spatial, C) -> (B, *spatial, C)``.
    """
    psf = tf.convert_to_tensor(psf, tf.float32)
    ksizes, sizes = list(psf.shape), [int(n) for n in spatial]
    lengths = _fft_lengths(sizes, ksizes)
    flipped = tf.reverse(psf, axis=list(range(psf.shape.rank)))
    kf_blur, kf_adjoint = _kernel_spectrum(flipped, ksizes, lengths), _kernel_spectrum(psf, ksizes, lengths)
    before_blur, before_adjoint = [(k - 1) // 2 for k in ksizes], [k // 2 for k in ksizes]
    return (lambda x: _correlate_spectrum(x, kf_blur, sizes, lengths, before_blur),
            lambda y: _correlate_spectrum(y, kf_adjoint, sizes, lengths, before_adjoint))
