"""Every benchmark script runs: its smoke mode (tiny sizes, one repeat) end to end.

The numbers of a smoke run mean nothing; what is checked is that the script still runs
against the package as it is and prints its table.
"""

import subprocess
import sys

import pytest

from tests.scripts import ROOT, load_script

pytestmark = pytest.mark.slow


def test_input_pipelines_smoke():
    rows = load_script("benchmarks/input_pipelines.py", "input_pipelines").main(["--smoke"])
    assert [r.split(" | ")[1] for r in rows][:1] == ["h5py"] and len(rows) >= 2
    assert all(float(r.rstrip(" |").rsplit("| ", 1)[1]) > 0 for r in rows)


def test_out_of_core_smoke(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    row = load_script("benchmarks/out_of_core.py", "out_of_core").main(["--smoke"])
    assert row.startswith("| (41, 164, 164) | 0.004 | 32 / 8 / 64 |")


def test_speed_smoke():
    proc = subprocess.run([sys.executable, "benchmarks/speed.py", "--smoke"], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.splitlines()
    for name in ("mri_smoke", "microscopy_smoke"):
        assert any(line.startswith(name) and "ot_cyclegan" in line and "ms" in line for line in lines), proc.stdout
        assert any(line.startswith(name) and "generator" in line for line in lines), proc.stdout


def test_speed_profile_smoke():
    """--profile reads TensorFlow's trace: every network of the OT step shows up with its convolutions.
    Every part is shown (--profile_min_share=0): the PSF's FFT can fall under the table's default 0.5 %
    when the machine is busy."""
    proc = subprocess.run([sys.executable, "benchmarks/speed.py", "--profile=microscopy_smoke",
                           "--profile_min_share=0"], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.split(" | ") for line in proc.stdout.splitlines()
            if line.startswith("| ") and "ms per step" not in line]
    parts = {(r[0][2:], r[1]) for r in rows if not r[0].startswith("|-")}
    for network in ("generator", "critic_x", "critic_y"):
        assert (network, "conv") in parts, proc.stdout
    assert ("forward_op", "FFT") in parts, proc.stdout
    shares = [float(r[3].rstrip(" |%")) for r in rows if r[3].rstrip(" |").endswith("%")]
    # the parts shown are the whole op time, each share rounded to 1 %
    assert 90 <= sum(shares) <= 100 + len(shares) / 2, proc.stdout


def test_quality_smoke(tmp_path):
    """MRI at x8 only (its flagfile nests the x4 one; the microscopy path of the script differs in
    its data flags alone, which tests/train/test_compare.py's microscopy run covers); the table,
    the training times and the targets are written, and --reuse reads the run back."""
    quality = load_script("benchmarks/quality.py", "quality_smoke")
    quality.main(["--smoke", "--application=mri_x8", f"--run_dir={tmp_path}"])
    text = (tmp_path / "QUALITY.md").read_text()
    assert "## mri_x8" in text and "acceleration=8" in text and "| ot_cyclegan |" in text and "Targets" in text
    assert "| ssdu |" in text and "best self-supervised" in text  # issue #26: the methods without clean images
    assert "training min" in text and (tmp_path / "mri_x8" / "seed0.seconds").exists()
    log = tmp_path / "mri_x8" / "seed0.log"
    stamp = log.stat().st_mtime_ns
    quality.main(["--smoke", "--no-data", "--application=mri_x8", f"--run_dir={tmp_path}", "--reuse"])
    assert log.stat().st_mtime_ns == stamp  # not trained again
    assert "seed 0 read back from an earlier run (--reuse)" in (tmp_path / "QUALITY.md").read_text()


@pytest.mark.parametrize("application,variant", [("mri", "A"), ("microscopy", "M3")])
def test_ablation_smoke(tmp_path, application, variant):
    load_script("benchmarks/ablation.py", f"ablation_{application}").main(
        ["--smoke", f"--application={application}", f"--run_root={tmp_path}"])
    table = (tmp_path / f"ABLATION_{application}.md").read_text()
    assert f"| {variant} |" in table


def test_psf_conv_smoke(capsys, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["psf_conv.py", "--patch=16", "--kernel=5", "--repeats=1"])
    load_script("benchmarks/psf_conv.py", "psf_conv").main()
    assert "speed-up fft vs direct" in capsys.readouterr().out


def test_error_split_smoke(tmp_path):
    means = load_script("benchmarks/error_split.py", "error_split_smoke").main(["--smoke", f"--run_dir={tmp_path}"])
    assert set(means) == {"input", "pls_tv", "supervised", "supervised+dc"}
    assert means["supervised+dc"]["measured_share"] == pytest.approx(0.0, abs=1e-4)
