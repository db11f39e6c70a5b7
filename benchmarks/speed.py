"""Speed benchmark: train steps, inference and the classical solvers, as ratios in one run.

    .venv/bin/python benchmarks/speed.py                   # everything (~21 min on 2 cores), writes RESULTS.md
    .venv/bin/python benchmarks/speed.py --only=mri_demo   # one configuration, printed only
    .venv/bin/python benchmarks/speed.py --smoke           # tiny networks, one repeat: checks it runs (make test)
    .venv/bin/python benchmarks/speed.py --profile=microscopy_demo  # where one OT step's time goes, printed

Every row runs in its own subprocess (thread pools are fixed when TensorFlow starts, and a
process's peak memory is its own), with the threads ``--threads=auto`` would choose for that
configuration, plus the OT step with the other choice; inference rows with TensorFlow's
default threads, as the inference commands run. The benchmark's own process measures
the machine's practical peak (float32 matmul, 2048-4096, median GFLOP/s) just before and
after each row, so each ratio compares numbers taken minutes apart on the same machine.

Per train step: the median wall time of ``tf.function(train_step)`` on a fixed batch (after
warm-up; no input pipeline), the FLOPs of that traced graph counted by TensorFlow's profiler
(``ProfileOptionBuilder.float_operation``: convolutions, their gradients and matmuls; FFTs
and element-wise ops are not counted, so the ratio is a lower bound of the arithmetic done),
FLOP/s over the matmul peak, and the process's peak resident memory. Inference: slices
(volumes) per second of the generator (compiled) and of the classical solvers (PLS-TV, 100
MFISTA iterations; Richardson-Lucy, 30 iterations, ours and scikit-image's).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# name: (task, size, overrides). Demo networks = train/configs/*_demo.flags; paper = */mri.flags, microscopy.flags.
MRI_DEMO = {"base_filters": 16, "depth": 4, "critic_filters": 16, "critic_layers": 3}
MRI_PAPER = {"base_filters": 64, "depth": 4, "critic_filters": 64, "critic_layers": 3}
MIC_DEMO = {"base_filters": 8, "depth": 2, "critic_filters": 8, "critic_layers": 2}
MIC_PAPER = {"base_filters": 32, "depth": 3, "critic_filters": 32, "critic_layers": 2}
CONFIGS = {
    "mri_demo": ("mri", 128, MRI_DEMO),
    "mri_paper": ("mri", 320, MRI_PAPER),
    "microscopy_demo": ("microscopy", 32, MIC_DEMO),
    "microscopy_paper": ("microscopy", 64, MIC_PAPER),
    # the paper's 20^3 learned PSF (the default fills the patch): train steps, only when --only names them
    "microscopy_demo_psf20": ("microscopy", 32, {**MIC_DEMO, "psf_size": 20}),
    "microscopy_paper_psf20": ("microscopy", 64, {**MIC_PAPER, "psf_size": 20}),
    # --smoke: the same code paths on tiny networks (seconds; numbers meaningless)
    "mri_smoke": ("mri", 16, {"base_filters": 2, "depth": 2, "critic_filters": 2, "critic_layers": 1}),
    "microscopy_smoke": ("microscopy", 16, {"base_filters": 2, "depth": 1, "critic_filters": 2, "critic_layers": 1,
                                            "psf_size": 5}),
}
SMOKE = ("mri_smoke", "microscopy_smoke")
VARIANTS = ("microscopy_demo_psf20", "microscopy_paper_psf20")
# RESULTS.md from this heading on is measured by input_pipelines.py and out_of_core.py: kept on rewrite.
KEPT = "\n## Input pipelines"
METHODS = ("ot_cyclegan", "cyclegan", "supervised", "mc", "ei", "ssdu")
MRI_ONLY = ("ssdu",)  # splits k-space columns: no microscopy row


def methods_for(name: str, methods: tuple[str, ...]) -> tuple[str, ...]:
    """The train-step methods of ``methods`` that configuration ``name``'s task has."""
    return tuple(m for m in methods if CONFIGS[name][0] == "mri" or m not in MRI_ONLY)


# --- the child: one configuration -----------------------------------------------------------
def matmul_peak(repeats: int = 5, sizes: tuple[int, ...] = (2048, 4096)) -> float:
    """Median float32 matmul GFLOP/s over ``sizes`` (2048 and 4096: the practical peak)."""
    import tensorflow as tf

    rates = []
    for n in sizes:
        a = tf.random.normal((n, n))
        mm = tf.function(lambda a: tf.matmul(a, a))
        mm(a).numpy()
        for _ in range(repeats):
            t = time.perf_counter()
            mm(a).numpy()
            rates.append(2 * n**3 / (time.perf_counter() - t) / 1e9)
    return statistics.median(rates)


def _register_conv3d_gradient_flops() -> None:
    """TensorFlow registers FLOP statistics for Conv3D but not for its gradients
    (``Conv3DBackpropInputV2``, also the forward op of ``Conv3DTranspose``, and
    ``Conv3DBackpropFilterV2``); each costs what the forward convolution costs:
    ``2 * |out_backprop| * kernel volume * input channels``."""
    import numpy as np
    from tensorflow.python.framework import ops

    def flops(graph, node, filter_shape_of):
        op = graph.get_operation_by_name(node.name)
        out_backprop = op.inputs[2].shape
        kernel = filter_shape_of(op)
        return ops.OpStats("flops", 2 * int(np.prod(out_backprop)) * int(np.prod(kernel[:-1])))

    for name, filter_shape_of in (("Conv3DBackpropInputV2", lambda op: op.inputs[1].shape),
                                  ("Conv3DBackpropFilterV2", lambda op: op.outputs[0].shape)):
        try:
            ops.RegisterStatistics(name, "flops")(lambda graph, node, f=filter_shape_of: flops(graph, node, f))
        except KeyError:  # registered already
            pass


def count_flops(concrete) -> float:
    """FLOPs of a traced graph by TensorFlow's profiler (ops with registered statistics,
    plus the 3-D convolution gradients, see :func:`_register_conv3d_gradient_flops`)."""
    import tensorflow as tf

    _register_conv3d_gradient_flops()
    opts = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    opts["output"] = "none"
    info = tf.compat.v1.profiler.profile(concrete.graph, options=opts)
    return float(info.total_float_ops)


def _batch(task_name: str, size: int, batch: int):
    import numpy as np

    rng = np.random.default_rng(0)
    if task_name == "mri":
        x = rng.standard_normal((batch, size, size, 2)).astype("float32")
        masks = (rng.random((batch, size)) < 0.3).astype("float32")
        return {"x": x, "y": x[::-1] * masks[:, None, :, None], "x_params": {"mask": masks},
                "y_params": {"mask": masks[::-1]}}
    return {"x": rng.random((batch, size, size, size, 1)).astype("float32"),
            "y": rng.random((batch, size, size, size, 1)).astype("float32")}


def _config(task, size: int, overrides: dict):
    """The comparison configuration of ``task`` (every method of ``train/compare.py`` builds from it)."""
    from tf_otcycle.comparison import comparison_config  # imports TensorFlow: after the thread settings

    size_key = "crop_size" if task.name == "mri" else "patch_size"
    return comparison_config(task, run_dir="unused", test_files="unused", steps_per_epoch=100, supervised_loss="l1",
                             **{size_key: size}, **overrides)


def time_calls(fn, repeats: int, warmup: int = 2) -> float:
    """Median seconds of ``fn()`` (its result fetched) after ``warmup`` calls."""
    import tensorflow as tf

    for _ in range(warmup):
        tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, fn())
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        tf.nest.map_structure(lambda t: t.numpy() if hasattr(t, "numpy") else t, fn())
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def train_step_row(name: str, method: str, repeats: int, precision: str = "none") -> dict:
    import tensorflow as tf

    from tf_otcycle import tasks
    from tf_otcycle.comparison import build_model
    from tf_otcycle.tasks.base import set_precision

    task_name, size, overrides = CONFIGS[name]
    task = tasks.get(task_name)
    config = _config(task, size, {**overrides, "mixed_precision": precision})
    set_precision(config, task.step_work(config))
    model = build_model(task, method, config, None)
    batch = _batch(task_name, size, config.batch_size)
    data = batch if method != "supervised" else (batch["y"], batch["x"])
    data = tf.nest.map_structure(tf.constant, data)
    step = tf.function(model.train_step)
    concrete = step.get_concrete_function(data)
    flops = count_flops(concrete)
    seconds = time_calls(lambda: step(data), repeats)
    return {"seconds": seconds, "gflop": flops / 1e9}


NETWORKS = ("generator", "critic_x", "critic_y", "forward_op")


def op_kind(op_type: str) -> str:
    """The class of a TensorFlow op type, as the profile groups it (oneDNN's ``_MklNative`` names too)."""
    if "Conv" in op_type:
        if "BackpropFilter" in op_type:
            return "conv, filter gradient"
        return "conv, input gradient" if "BackpropInput" in op_type else "conv"
    if "BatchNorm" in op_type:
        return "normalisation"
    if "FFT" in op_type:
        return "FFT"
    return "element-wise and other"


def read_trace(logdir: str, steps: int) -> dict:
    """Per ``(network, op kind)``: milliseconds of op execution per step, summed over the
    runtime's threads, from the TensorFlow profiler's trace in ``logdir`` (its XSpace file)."""
    import glob

    from tensorflow.tsl.profiler.protobuf import xplane_pb2  # TensorFlow's own trace format

    space = xplane_pb2.XSpace()
    space.ParseFromString(Path(glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)[0]).read_bytes())
    table: dict = {}
    for plane in space.planes:
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):  # the executor's threads
                continue
            for event in line.events:
                full = names.get(event.metadata_id, "")
                if full.startswith("ExecutorState") or ":" not in full:  # the executor's spans enclose the ops
                    continue
                op_name, _, op_type = full.rpartition(":")
                network = next((n for n in NETWORKS if n in op_name), "objective and optimizers")
                key = (network, op_kind(op_type))
                table[key] = table.get(key, 0.0) + event.duration_ps / 1e9 / steps
    return table


def profile_row(name: str, method: str, steps: int) -> dict:
    """Where one ``train_step`` of ``name`` goes: op time per network and op kind (ms per
    step, all threads), with the step's wall time measured under the profiler."""
    import tempfile

    import tensorflow as tf

    from tf_otcycle import tasks
    from tf_otcycle.comparison import build_model

    task_name, size, overrides = CONFIGS[name]
    task = tasks.get(task_name)
    model = build_model(task, method, _config(task, size, overrides), None)
    data = tf.nest.map_structure(tf.constant, _batch(task_name, size, 1))
    step = tf.function(model.train_step)
    for _ in range(3):
        tf.nest.map_structure(lambda t: t.numpy(), step(data))
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        start = time.perf_counter()
        for _ in range(steps):
            tf.nest.map_structure(lambda t: t.numpy(), step(data))
        wall = (time.perf_counter() - start) / steps
        tf.profiler.experimental.stop()
        table = read_trace(logdir, steps)
    return {"wall_ms": wall * 1e3, "ops": [[net, kind, ms] for (net, kind), ms in table.items()]}


def profile_lines(row: dict, min_share: float = 0.005) -> list[str]:
    """The profile as a Markdown table, largest first, with each part's share of the op time
    (parts under ``min_share`` of it left out)."""
    total = sum(ms for _, _, ms in row["ops"])
    lines = [f"{row['name']} {row['method']} (threads {row['threads']}): {row['wall_ms']:.1f} ms per step under the "
             f"profiler, {total:.1f} ms of op time on all threads", "",
             "| network | op kind | ms per step | share |", "|---|---|---|---|"]
    for net, kind, ms in sorted(row["ops"], key=lambda r: -r[2]):
        if ms >= min_share * total:
            lines.append(f"| {net} | {kind} | {ms:.1f} | {ms / total:.0%} |")
    return lines


def inference_row(name: str, method: str, repeats: int) -> dict:
    """Generator (batched, compiled) or classical solver throughput on ``name``'s size."""
    import numpy as np
    import tensorflow as tf

    from tf_otcycle import classical, tasks

    task_name, size, overrides = CONFIGS[name]
    task = tasks.get(task_name)
    config = _config(task, size, overrides)
    batch = 8 if task_name == "mri" else 1
    data = _batch(task_name, size, batch)
    if method == "generator":
        from tf_otcycle.models import predictor

        run = predictor(task.generator(config, None))
        return {"seconds": time_calls(lambda: run(data["y"]), repeats) / batch,
                "unit": "slice" if task_name == "mri" else "volume"}
    if method == "pls_tv":
        y = tf.complex(data["y"][..., 0], data["y"][..., 1])
        mask = tf.constant(data["y_params"]["mask"])
        return {"seconds": time_calls(lambda: classical.pls_tv(y, mask, iterations=100)[0], repeats, 1) / batch,
                "unit": "slice"}
    if method.startswith("richardson_lucy"):
        from skimage.restoration import richardson_lucy as skimage_rl

        from tf_otcycle.physics.psf import gaussian_psf, odd_centred

        psf = gaussian_psf((20, 20, 20), (2.0, 1.0, 1.0))
        volume = np.asarray(data["y"][0, ..., 0])
        if method == "richardson_lucy":
            run = lambda: classical.richardson_lucy(volume, psf, 30)  # noqa: E731
        else:
            run = lambda: skimage_rl(volume.astype(np.float64), odd_centred(psf), num_iter=30, clip=False)  # noqa: E731
        return {"seconds": time_calls(run, repeats, 1), "unit": "volume"}
    raise ValueError(method)


def child(args) -> None:
    from tf_otcycle import tasks
    from tf_otcycle.training import set_threads

    task_name, size, overrides = CONFIGS[args.name]
    task = tasks.get(task_name)
    threads = set_threads(args.threads, task.step_work(_config(task, size, overrides)))  # before any TF op
    if args.kind == "train":
        row = train_step_row(args.name, args.method, args.repeats, args.mixed_precision)
    elif args.kind == "profile":
        row = profile_row(args.name, args.method, args.repeats)
    else:
        row = inference_row(args.name, args.method, args.repeats)
    row["threads"] = "tensorflow" if threads is None else f"{threads[0]},{threads[1]}"
    row["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print("RESULT " + json.dumps(row), flush=True)


# --- the parent: every row, one table ---------------------------------------------------------
def run_child(kind: str, name: str, method: str, repeats: int, threads: str = "auto",
              peak_sizes: tuple[int, ...] = (2048, 4096), precision: str = "none") -> dict:
    """One row in its own process, between two measurements of the matmul peak (this process)."""
    before = matmul_peak(3, peak_sizes)
    command = [sys.executable, __file__, "--child", kind, "--name", name, "--method", method,
               "--repeats", str(repeats), "--threads", threads, "--mixed_precision", precision]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""})
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            row = json.loads(line[7:])
            row.update(name=name, method=method, peak=(before + matmul_peak(3, peak_sizes)) / 2)
            return row
    raise RuntimeError(f"{kind} {name} {method} failed:\n{out.stderr[-3000:]}")


def other_threads(row: dict) -> str:
    """The thread setting ``auto`` did not choose for this row (the comparison behind it)."""
    cores = os.cpu_count() or 1
    return f"1,{cores}" if row["threads"] == "tensorflow" else "tensorflow"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="",
                        help="comma-separated configurations (default: all but the _psf20 variants, the paper's "
                             "20^3 PSF)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "RESULTS.md"))
    parser.add_argument("--methods", default=",".join(METHODS),
                        help="train-step methods (default: every learned method of train/compare.py)")
    parser.add_argument("--mixed_precision", default="none", choices=["none", "mixed_bfloat16", "mixed_float16"],
                        help="the networks' dtype policy in the train-step rows (printed only unless none)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny networks, the OT step and the generator only, one repeat; prints, writes nothing")
    parser.add_argument("--profile", default="",
                        help="comma-separated configurations: print where one OT-cycleGAN step's time goes; "
                        "writes nothing")
    parser.add_argument("--profile_min_share", type=float, default=0.5,
                        help="--profile: parts under this percentage of the op time are left out of the table")
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    parser.add_argument("--name", default="", help=argparse.SUPPRESS)
    parser.add_argument("--method", default="", help=argparse.SUPPRESS)
    parser.add_argument("--threads", default="auto", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        args.kind = args.child
        return child(args)
    from tf_otcycle._startup import import_tensorflow

    import_tensorflow()  # the parent's runtime, default threads: the matmul peak

    if args.profile:
        for name in args.profile.split(","):
            row = run_child("profile", name, "ot_cyclegan", 1 if "smoke" in name else 5, peak_sizes=(256,))
            print("\n".join(profile_lines(row, args.profile_min_share / 100)) + "\n", flush=True)
        return
    if args.smoke:
        names, methods, peak_sizes = list(SMOKE), ("ot_cyclegan",), (256,)
    else:
        names = configurations(args.only)
        methods, peak_sizes = tuple(m for m in args.methods.split(",") if m), (2048, 4096)
    rows, infer = [], []
    for name in names:
        repeats = 1 if args.smoke else args.repeats if "paper" not in name else 3
        for method in methods_for(name, methods):
            rows.append(run_child("train", name, method, repeats, peak_sizes=peak_sizes,
                                  precision=args.mixed_precision))
            print(train_line(rows[-1]), flush=True)
        if not args.smoke and args.mixed_precision == "none" and len(methods) == len(METHODS):
            ot = next(r for r in rows if r["name"] == name and r["method"] == "ot_cyclegan")
            rows.append(run_child("train", name, "ot_cyclegan", repeats, other_threads(ot)))
            print(train_line(rows[-1]), flush=True)
        solvers = ["generator"] + (["pls_tv"] if name.startswith("mri") else ["richardson_lucy",
                                                                              "richardson_lucy_skimage"])
        for method in solvers[: 1 if args.smoke else 0 if args.mixed_precision != "none" or name in VARIANTS else None]:
            infer.append(run_child("infer", name, method, 1 if args.smoke else 3, "tensorflow", peak_sizes))
            print(f"{name:18} {method:24} {1 / infer[-1]['seconds']:9.2f} {infer[-1]['unit']}s/s", flush=True)
    if not args.only and not args.smoke and args.mixed_precision == "none" and len(methods) == len(METHODS):
        out = Path(args.out)
        old = out.read_text() if out.exists() else ""
        kept = KEPT + old.split(KEPT, 1)[1] if KEPT in old else ""  # sections other scripts measured
        profiles = [run_child("profile", name, "ot_cyclegan", 5, peak_sizes=(256,))
                    for name in ("mri_demo", "microscopy_demo")]
        out.write_text(report(rows, infer, profiles) + kept)
        print(f"wrote {args.out}")


def step_ratio_lines(by: dict) -> list[str]:
    """``- name: method ratio (FLOP ratio), ...`` against the OT step, per configuration with one;
    ``by`` maps ``(name, method)`` to its row."""
    lines = []
    for name in dict.fromkeys(n for n, _ in by):
        ot = by.get((name, "ot_cyclegan"))
        others = [r for (n, m), r in by.items() if n == name and m != "ot_cyclegan"]
        if ot and others:
            lines.append(f"- {name}: " + ", ".join(
                f"{r['method']} {r['seconds'] / ot['seconds']:.2f} ({r['gflop'] / ot['gflop']:.2f})" for r in others))
    return lines


def configurations(only: str) -> list[str]:
    """The configurations ``--only`` names, or by default all but the smoke ones and the variants."""
    names = [n for n in only.split(",") if n] or [n for n in CONFIGS if n not in SMOKE + VARIANTS]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise SystemExit(f"speed.py: unknown configuration(s) {', '.join(unknown)}; known: {', '.join(CONFIGS)}")
    return names


def train_line(r: dict) -> str:
    return (f"{r['name']:18} {r['method']:12} threads {r['threads']:10} {r['seconds'] * 1e3:9.1f} ms "
            f"{r['gflop']:8.1f} GFLOP {r['gflop'] / r['seconds'] / r['peak']:5.2f} of {r['peak']:.0f} GFLOP/s "
            f"{r['peak_rss_gib']:5.2f} GiB")


VECTOR_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16")


def cpu_description(cpuinfo: str | None = None) -> str:
    """The CPU's model name and the vector extensions oneDNN can use (from ``/proc/cpuinfo``
    where there is one), e.g. ``Intel(R) Xeon(R) Processor (avx2, fma, avx512f, amx_bf16)``."""
    from tf_otcycle.training import cpu_flags, cpuinfo_field, read_cpuinfo

    if cpuinfo is None:
        cpuinfo = read_cpuinfo()
    model = cpuinfo_field("model name", cpuinfo) or platform.processor() or platform.machine()
    flags = cpu_flags(cpuinfo)
    present = [flag for flag in VECTOR_FLAGS if flag in flags]
    return f"{model} ({', '.join(present) if present else 'flags unknown'})"


def report(rows: list[dict], infer: list[dict], profiles: list[dict] = ()) -> str:
    import tensorflow as tf

    peaks = [r["peak"] for r in rows + infer]
    onednn = "off" if os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "0" else "on"
    lines = [
        "# Speed benchmark", "",
        f"`python benchmarks/speed.py` on {datetime.date.today().isoformat()}: {cpu_description()}, "
        f"{os.cpu_count()} cores, CPU only ({platform.platform()}; TensorFlow {tf.__version__}, oneDNN {onednn}). "
        "Every row ran in its own process; the practical peak (float32 matmul 2048-4096, "
        f"median) was measured just before and after each row in the benchmark's own process, and each ratio uses "
        f"that row's mean of the two, given in the row (here {min(peaks):.0f}-{max(peaks):.0f} GFLOP/s: the machine "
        "is shared, so compare ratios, not times across rows).", "",
        "## Train steps", "",
        "One `tf.function(train_step)` on a fixed batch of 1 (median of repeats after warm-up; no input pipeline). "
        "GFLOP: TensorFlow's profiler on the traced graph (convolutions, their gradients, matmuls; the 3-D "
        "convolution gradients, which TensorFlow does not count, registered by the benchmark; FFTs, normalisation "
        "and element-wise ops not counted, so the ratio is a lower bound). Threads: what `--threads=auto` "
        "chooses, plus the OT step with the other setting. Peak RSS: the row's own process.", "",
        "| configuration | method | threads | ms/step | GFLOP/step | of peak | peak (GFLOP/s) | peak RSS (GiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['name']} | {r['method']} | {r['threads']} | {r['seconds'] * 1e3:.1f} | {r['gflop']:.1f} | "
                     f"{r['gflop'] / r['seconds'] / r['peak']:.2f} | {r['peak']:.0f} | {r['peak_rss_gib']:.2f} |")
    by = {}
    for r in rows:
        by.setdefault((r["name"], r["method"]), r)  # the auto-threads row first
    lines += ["", "OT-cycleGAN step / conventional cycleGAN step, time (FLOPs):", ""]
    for name in dict.fromkeys(r["name"] for r in rows):
        ot, cg = by.get((name, "ot_cyclegan")), by.get((name, "cyclegan"))
        if ot and cg:
            lines.append(f"- {name}: {ot['seconds'] / cg['seconds']:.2f} ({ot['gflop'] / cg['gflop']:.2f})")
    lines += ["", "Each method's step / the OT-cycleGAN's step, time (FLOPs), at the same threads (a learned "
              "method of `train/compare.py` trains for the same number of steps, so this is its training time "
              "relative to the OT-cycleGAN's, validation aside):", ""]
    lines += step_ratio_lines(by)
    lines += ["", "## Inference", "",
              "Generator: `tf_otcycle.models.predictor` (compiled), batches of 8 slices (MRI) or one volume, per item. "
              "PLS-TV: 100 MFISTA iterations, compiled, batch of 8 slices. Richardson-Lucy: 30 iterations, one volume, "
              "20^3 PSF, compiled TensorFlow (ours) and scikit-image (float64 NumPy/SciPy).", "",
              "| configuration | method | items/s | s/item | peak (GFLOP/s) | peak RSS (GiB) |",
              "|---|---|---|---|---|---|"]
    for r in infer:
        lines.append(f"| {r['name']} | {r['method']} | {1 / r['seconds']:.2f} {r['unit']}s | {r['seconds']:.4f} | "
                     f"{r['peak']:.0f} | {r['peak_rss_gib']:.2f} |")
    if profiles:
        lines += ["", "## Where the demo steps go", "",
                  "`python benchmarks/speed.py --profile=NAME`: op time of one OT-cycleGAN step from TensorFlow's "
                  "trace (5 steps after warm-up), per network and op kind, summed over the runtime's threads; parts "
                  "under 0.5 % left out. The profiler slows the step; the shares are what to read.", ""]
        for row in profiles:
            lines += profile_lines(row) + [""]
    return "\n".join(lines).rstrip("\n") + "\n"


if __name__ == "__main__":
    main()
