"""Labelled comparison figures and the HTML report."""

import numpy as np
import tensorflow as tf

from tf_otcycle.evaluation import Sample, evaluate, write_report
from tf_otcycle.figures import comparison_figure, markdown_table_html


def test_comparison_figure_is_labelled_and_not_clipped(tmp_path):
    rng = np.random.default_rng(0)
    target = rng.random((64, 48)).astype(np.float32)
    images = {"input": target + 0.3 * rng.standard_normal(target.shape), "ours": target + 0.05}
    comparison_figure(tmp_path / "f.png", images, target, {"input": {"psnr": 10.5, "ssim": 0.2}}, title="a.h5")
    png = tf.io.decode_png((tmp_path / "f.png").read_bytes()).numpy()
    assert png.shape[0] >= 300 and png.shape[1] >= 600  # readable, not 192x64


def test_markdown_table_to_html():
    html = markdown_table_html("| method | psnr |\n|---|---|\n| ours | 17.8 |\n")
    assert "<th>method</th>" in html and "<td>17.8</td>" in html and "---" not in html


def test_evaluation_writes_figures_and_an_html_report(tmp_path):
    target = np.random.default_rng(1).random((3, 16, 16)).astype(np.float32)
    samples = [Sample(name=f"v{i}.h5", group="test", inputs=(target + 0.1 * (i + 1),), target=target) for i in range(2)]
    report = evaluate({"input": lambda y: y, "zeros": np.zeros_like}, samples, tmp_path, num_panels=1)
    write_report(report, tmp_path)
    figures = sorted(tmp_path.glob("*.png"))
    assert [f.name for f in figures] == ["test_v0_slice001.png"]
    page = (tmp_path / "report.html").read_text()
    assert "<td>zeros</td>" in page and 'src="test_v0_slice001.png"' in page


def test_report_names_the_run_shows_its_settings_and_the_psf_figure(tmp_path):
    from tf_otcycle.evaluation import write_psf_panel

    run = tmp_path / "my_run"
    (run / "eval").mkdir(parents=True)
    (run / "flags.txt").write_text("--epochs=3\n--psf_size=5\n")
    psf = np.zeros((5, 5, 5), np.float32)
    psf[2, 2, 2] = 1.0
    write_psf_panel(run / "psf" / "psf_sections.png", {"learned": psf, "true": psf})
    png = tf.io.decode_png((run / "psf" / "psf_sections.png").read_bytes()).numpy()
    assert png.shape[0] > png.shape[1] / 3  # two labelled rows of three sections
    target = np.random.default_rng(1).random((2, 8, 8)).astype(np.float32)
    report = evaluate({"input": lambda y: y}, [Sample(name="v.h5", group="", inputs=(target + 0.1,), target=target)],
                      run / "eval", num_panels=0)
    write_report(report, run / "eval")
    page = (run / "eval" / "report.html").read_text()
    assert "<title>Evaluation of my_run</title>" in page and "--psf_size=5" in page
    assert 'src="../psf/psf_sections.png"' in page
