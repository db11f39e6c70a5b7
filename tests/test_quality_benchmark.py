"""benchmarks/quality.py: the targets are judged on the mean over seeds, and say so per seed."""

from pathlib import Path

import pytest

from tests.scripts import load_script


@pytest.fixture(scope="module")
def quality():
    return load_script("benchmarks/quality.py", "quality")


def _table(**psnr):
    return {m: {"psnr": p, "ssim": 0.5 if m != "input" else 0.2} for m, p in psnr.items()}


def test_summary_is_the_mean_and_sample_sd_over_seeds(quality):
    stats = quality.summary([_table(input=14.0, supervised=19.2, ot_cyclegan=18.7),
                             _table(input=14.0, supervised=18.6, ot_cyclegan=19.0),
                             _table(input=14.0, supervised=18.4, ot_cyclegan=18.3)])
    assert stats["supervised"]["psnr"] == pytest.approx(18.7333, abs=1e-4)
    assert stats["supervised"]["psnr_sd"] == pytest.approx(0.4163, abs=1e-4)  # ddof=1
    assert stats["ot_cyclegan"]["psnr"] == pytest.approx(18.6667, abs=1e-4)
    assert stats["input"]["psnr_sd"] == 0.0 and stats["input"]["seeds"] == 3
    assert quality.summary([_table(input=14.0)])["input"]["psnr_sd"] == 0.0  # one seed: no spread


def test_targets_on_the_means_not_on_one_seed(quality):
    seeds = [_table(input=14.0, supervised=19.2, cyclegan=14.9, pls_tv=14.6, ot_cyclegan=18.7),
             _table(input=14.0, supervised=18.6, cyclegan=14.9, pls_tv=14.6, ot_cyclegan=19.0)]
    on_first = quality.target_lines(seeds[0])
    on_mean = quality.target_lines(quality.summary(seeds))
    label = "ot_cyclegan >= supervised - 0.3 dB"
    assert f"- NOT met: {label}" in on_first  # 0.5 dB below on seed 0 alone
    assert f"- met: {label}" in on_mean  # 0.05 dB below on the mean
    assert "- met: ot_cyclegan > classical" in on_mean
    missing = quality.target_lines(_table(input=14.0, ot_cyclegan=18.0))
    assert any(line.startswith("- not checked (supervised not run)") for line in missing)


def test_the_command_names_the_seed_and_its_run_dir(quality):
    command = quality.compare_command("mri", Path("runs/q/mri/seed2"), 2, ["--epochs=1"])
    assert command[1:] == ["train/compare.py", "--flagfile=benchmarks/quality_mri.flags",
                           "--run_dir=runs/q/mri/seed2", "--seed=2", "--epochs=1"]


def test_set_targets_compare_with_the_best_classical_row(quality):
    table = _table(input=23.7, richardson_lucy=24.5, richardson_lucy_tv=24.9, ot_cyclegan=25.7)
    table["richardson_lucy_tv"]["ssim"] = 0.6
    lines = quality.target_lines(table, quality.SET_TARGETS)
    assert "- NOT met: ot_cyclegan >= best classical + 1 dB (PSNR after the affine fit)" in lines  # 0.8 dB above RL-TV
    assert "- met: ot_cyclegan >= input + 1.36 dB (PSNR after the affine fit)" in lines
    assert "- NOT met: ot_cyclegan SSIM > input and best classical SSIM" in lines
    table["ot_cyclegan"]["psnr"] = 26.0
    assert "- met: ot_cyclegan >= best classical + 1 dB (PSNR after the affine fit)" in quality.target_lines(
        table, quality.SET_TARGETS)


def test_group_table_and_sections_kept_by_name(quality, tmp_path):
    runs = []
    for seed, (a, b) in enumerate([(24.0, 20.0), (26.0, 21.0)]):
        run_dir = tmp_path / f"seed{seed}"
        (run_dir / "eval").mkdir(parents=True)
        (run_dir / "eval" / "per_group.csv").write_text(
            f"method,group,psnr,ssim\nrichardson_lucy,test_nuclei,{a},0.5\nrichardson_lucy,test_beads,{b},0.4\n")
        runs.append((seed, run_dir, ""))
    lines = quality.group_table(runs)
    assert lines[0] == "| method | test_beads | test_nuclei |"
    assert lines[2] == "| richardson_lucy | 20.50 | 25.00 |"
    text = "# Q\n\n## mri\n\nm\n\n## microscopy: beads\n\nb\n\n## Notes\n\nkept\n"
    assert quality.previous_sections(text) == {"mri": "## mri\n\nm\n",
                                               "microscopy: beads": "## microscopy: beads\n\nb\n"}


def test_set_targets_use_the_psnr_after_the_affine_fit_when_reported(quality):
    table = _table(input=10.0, richardson_lucy=9.0, ot_cyclegan=9.5)  # raw PSNR: an intensity offset
    for method, fitted in (("input", 20.0), ("richardson_lucy", 23.0), ("ot_cyclegan", 24.5)):
        table[method]["psnr_affine"] = fitted
    lines = quality.target_lines(table, quality.SET_TARGETS)
    assert "- met: ot_cyclegan >= best classical + 1 dB (PSNR after the affine fit)" in lines
    table["zeros"] = {"psnr": 18.0, "ssim": 0.5, "psnr_affine": 19.0}  # above the OT row only before the fit
    assert "- met: ot_cyclegan > zeros (trivial reference, PSNR after the affine fit)" in quality.target_lines(
        table, quality.SET_TARGETS)
    assert "- NOT met: ot_cyclegan > zeros (trivial reference)" in quality.target_lines(table)
    del table["zeros"]
    stats = quality.summary([table, table])
    assert stats["ot_cyclegan"]["psnr_affine"] == 24.5
    assert "24.50 +- 0.00" in "\n".join(quality.summary_table(stats, [table, table], [0, 1]))


def test_mri_targets_compare_with_the_best_self_supervised_row(quality):
    table = _table(input=14.0, supervised=18.8, mc=14.1, ei=18.9, ssdu=17.0, ot_cyclegan=18.75)
    lines = quality.target_lines(table)
    assert "- NOT met: ot_cyclegan >= best self-supervised" in lines  # EI is 0.15 dB above
    assert "- met: ot_cyclegan >= supervised - 0.1 dB" in lines
    table["ot_cyclegan"]["psnr"] = 19.0
    assert "- met: ot_cyclegan >= best self-supervised" in quality.target_lines(table)
    assert "- not checked (self-supervised not run): ot_cyclegan >= best self-supervised" in quality.target_lines(
        _table(input=14.0, ot_cyclegan=18.0))


def test_training_time_is_averaged_and_shown_for_learned_methods(quality):
    seeds = [_table(input=14.0, ot_cyclegan=18.7), _table(input=14.0, ot_cyclegan=19.0)]
    seeds[0]["ot_cyclegan"]["train_seconds"], seeds[1]["ot_cyclegan"]["train_seconds"] = 540.0, 660.0
    seeds[0]["input"]["train_seconds"] = seeds[1]["input"]["train_seconds"] = ""  # not a learned method
    stats = quality.summary(seeds)
    assert stats["ot_cyclegan"]["train_seconds"] == pytest.approx(600.0) and "train_seconds" not in stats["input"]
    rows = {line.split(" | ")[0]: line for line in quality.summary_table(stats, seeds, [0, 1])}
    assert "| 10.0 | 18.70 | 19.00 |" in rows["| ot_cyclegan"] and "| 0.200 +- 0.000 |  | 14.00" in rows["| input"]


def test_the_x8_budget_follows_its_nested_flagfile(quality):
    text = quality.budget(quality.ROOT / "benchmarks" / "quality_mri_x8.flags")
    assert "epochs=20" in text and "steps_per_epoch=100" in text and "acceleration=8" in text


def test_the_gap_to_supervised_is_in_the_sets_own_psnr(quality):
    seeds = [_table(supervised=20.0, ot_cyclegan=19.0), _table(supervised=21.0, ot_cyclegan=21.5)]
    for table, (sup, ot) in zip(seeds, [(25.0, 26.0), (27.0, 26.5)]):
        table["supervised"]["psnr_affine"], table["ot_cyclegan"]["psnr_affine"] = sup, ot
    assert quality.supervised_gaps(seeds) == "OT-cycleGAN minus supervised per seed: -1.00, +0.50 dB"
    assert quality.supervised_gaps(seeds, fitted=True) == (
        "OT-cycleGAN minus supervised per seed (PSNR after the affine fit): +1.00, -0.50 dB")


def test_reuse_reads_finished_seeds_back_and_runs_the_others(quality, tmp_path, monkeypatch):
    done = tmp_path / "mri" / "seed0"
    (done / "eval").mkdir(parents=True)
    (done / "eval" / "metrics.csv").write_text("method,psnr,ssim,train_seconds\ninput,14.0,0.2,\nmc,14.1,0.2,60\n")
    (done / "eval" / "metrics.md").write_text("| method |\n")
    (tmp_path / "mri" / "seed0.log").write_text("seed 0's log\n")
    ran = []

    def fake_run(command, log_path):
        ran.append(command)
        log_path.write_text("fresh\n")
        return 5.0

    monkeypatch.setattr(quality, "run_compare", fake_run)
    runs, seconds, reused = quality.run_seeds("mri", tmp_path / "mri", [], [0, 1], reuse=True)
    assert reused == [0] and [r[0] for r in runs] == [0, 1] and runs[0][2] == "seed 0's log\n"
    assert len(ran) == 1 and "--seed=1" in ran[0]
    assert seconds == pytest.approx(65.0)  # seed 0: no .seconds file, its training seconds
    quality.run_seeds("mri", tmp_path / "mri", [], [0], reuse=False)
    assert len(ran) == 2  # without --reuse every seed runs


def test_methods_pass_through_whole_after_the_other_flags(quality):
    """--flags splits on commas; --methods keeps its list as one compare.py flag, last (it wins)."""
    assert quality.extra_flags("--a=1,--b=2", "input,ot_cyclegan") == ["--a=1", "--b=2", "--methods=input,ot_cyclegan"]
    assert quality.extra_flags("", "") == []


def test_an_mri_set_is_judged_by_the_mri_targets_a_microscopy_set_by_issue_25s(quality, tmp_path):
    run_dir = tmp_path / "seed0"
    (run_dir / "eval").mkdir(parents=True)
    (run_dir / "eval" / "metrics.csv").write_text(
        "method,psnr,ssim\ninput,20.0,0.4\nsupervised,24.0,0.7\npls_tv,21.0,0.5\nssdu,22.0,0.6\not_cyclegan,23.95,0.69\n")
    (run_dir / "eval" / "metrics.md").write_text("| method |\n")
    title = quality.set_title("real_brain", "mri")
    mri = quality.section("mri", ["python", "compare"], 60.0, [(0, run_dir, "")], title)
    assert mri.startswith("## mri: real_brain\n") and "Targets (issues #9, #26)" in mri
    assert "- met: ot_cyclegan >= supervised - 0.1 dB" in mri and "- met: ot_cyclegan > classical" in mri
    assert "epochs=20" in mri  # the MRI benchmark's budget
    microscopy = quality.section("microscopy", ["python", "compare"], 60.0, [(0, run_dir, "")],
                                 quality.set_title("beads"))
    assert microscopy.startswith("## microscopy: beads\n") and "Targets (issue #25)" in microscopy


def test_chosen_sets_name_an_unknown_set_and_skip_sets_not_wanted(quality):
    assert quality.chosen_sets("mri_sets", "real_brain", quality.mri_sets.SETS, True) == ["real_brain"]
    assert quality.chosen_sets("mri_sets", "none", quality.mri_sets.SETS, True) == []
    assert quality.chosen_sets("mri_sets", "knee", quality.mri_sets.SETS, False) == []  # its application does not run
    with pytest.raises(ValueError, match=r"--mri_sets: unknown \['knee'\]; expected some of \['real_brain'\]"):
        quality.chosen_sets("mri_sets", "real_brain,knee", quality.mri_sets.SETS, True)
