"""Direct vs FFT ``PSFConv3D``: forward + backward on a 64^3 patch with a 20^3 kernel.

Run: ``.venv/bin/python benchmarks/psf_conv.py``. Prints the time of each implementation
(median of ``--repeats`` runs after one warm-up) and their ratio, measured in one process.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import tensorflow as tf

from tf_otcycle.layers import PSFConv3D


def time_step(layer: PSFConv3D, x: tf.Tensor, repeats: int) -> float:
    @tf.function
    def step():
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.square(layer(x)))
        return tape.gradient(loss, [x, layer.kernel])

    step()  # trace + warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        _ = [g.numpy() for g in step()]
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--kernel", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    x = tf.random.uniform((1, args.patch, args.patch, args.patch, 1))
    psf = np.random.default_rng(0).random((args.kernel,) * 3)
    results = {}
    for impl in ("fft", "direct"):
        layer = PSFConv3D(args.kernel, implementation=impl)
        layer.set_psf(psf)
        results[impl] = time_step(layer, x, args.repeats)
        print(f"{impl:>6}: {results[impl] * 1e3:9.1f} ms per forward+backward")
    print(f"speed-up fft vs direct: {results['direct'] / results['fft']:.0f}x "
          f"(patch {args.patch}^3, kernel {args.kernel}^3, "
          f"{tf.config.threading.get_inter_op_parallelism_threads() or 'default'} threads)")


if __name__ == "__main__":
    main()
