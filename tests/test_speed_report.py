"""benchmarks/speed.py's report: the CPU it names, each row's peak, the profile's table."""

import pytest

from tests.scripts import load_script

speed = load_script("benchmarks/speed.py", "speed")

CPUINFO = """processor\t: 0
model name\t: Intel(R) Xeon(R) Processor
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512_bf16 amx_tile amx_bf16 avx512_vnni
"""


def test_cpu_description_names_the_model_and_its_vector_extensions():
    assert speed.cpu_description(CPUINFO) == (
        "Intel(R) Xeon(R) Processor (avx2, fma, avx512f, avx512_vnni, avx512_bf16, amx_tile, amx_bf16)")
    assert speed.cpu_description("model name : AMD EPYC\nflags : avx2 fma\n") == "AMD EPYC (avx2, fma)"
    assert speed.cpu_description("").endswith("(flags unknown)")


def test_report_gives_each_row_its_peak_and_the_profiles():
    train = {"name": "mri_demo", "method": "ot_cyclegan", "threads": "1,2", "seconds": 0.1, "gflop": 16.0,
             "peak": 320.0, "peak_rss_gib": 0.9}
    infer = {"name": "mri_demo", "method": "generator", "seconds": 0.01, "unit": "slice", "peak": 300.0,
             "peak_rss_gib": 0.9}
    profile = {"name": "mri_demo", "method": "ot_cyclegan", "threads": "1,2", "wall_ms": 100.0,
               "ops": [["generator", "conv", 60.0], ["critic_x", "conv", 39.9], ["generator", "FFT", 0.1]]}
    text = speed.report([train], [infer], [profile])
    assert "| mri_demo | ot_cyclegan | 1,2 | 100.0 | 16.0 | 0.50 | 320 | 0.90 |" in text
    assert "| mri_demo | generator | 100.00 slices | 0.0100 | 300 | 0.90 |" in text
    assert "## Where the demo steps go" in text
    assert "| generator | conv | 60.0 | 60% |" in text and "| critic_x | conv | 39.9 | 40% |" in text
    assert "FFT" not in text.split("## Where the demo steps go")[1]  # under 0.5 % of the op time: left out
    assert speed.op_kind("_MklNativeConv3DBackpropFilterV2") == "conv, filter gradient"
    assert speed.op_kind("Conv2DBackpropInput") == "conv, input gradient"
    assert speed.op_kind("_MklNativeFusedBatchNormGradV3") == "normalisation"


def test_the_psf20_variants_differ_from_their_configuration_only_in_the_kernel_and_run_only_when_named():
    for name in speed.VARIANTS:
        task, size, overrides = speed.CONFIGS[name]
        base_task, base_size, base_overrides = speed.CONFIGS[name.removesuffix("_psf20")]
        assert (task, size, overrides) == (base_task, base_size, {**base_overrides, "psf_size": 20})
    default = speed.configurations("")
    assert "microscopy_paper" in default and not set(default) & set(speed.VARIANTS + speed.SMOKE)
    assert speed.configurations("microscopy_paper,microscopy_paper_psf20") == ["microscopy_paper",
                                                                               "microscopy_paper_psf20"]
    with pytest.raises(SystemExit, match="unknown configuration"):
        speed.configurations("microscopy_papr")


def test_every_learned_method_is_timed_against_the_ot_step_and_ssdu_only_on_mri():
    assert speed.methods_for("mri_demo", speed.METHODS) == speed.METHODS
    assert speed.methods_for("microscopy_demo", speed.METHODS) == ("ot_cyclegan", "cyclegan", "supervised", "mc", "ei")

    def row(name, method, seconds, gflop):
        return {"name": name, "method": method, "seconds": seconds, "gflop": gflop}

    by = {("mri_demo", "ot_cyclegan"): row("mri_demo", "ot_cyclegan", 0.1, 16.0),
          ("mri_demo", "supervised"): row("mri_demo", "supervised", 0.05, 4.0),
          ("mri_demo", "ssdu"): row("mri_demo", "ssdu", 0.025, 4.0),
          ("microscopy_demo", "ei"): row("microscopy_demo", "ei", 0.1, 1.0)}  # no OT row: no line
    assert speed.step_ratio_lines(by) == ["- mri_demo: supervised 0.50 (0.25), ssdu 0.25 (0.25)"]
