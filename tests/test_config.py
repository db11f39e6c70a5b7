"""Typed, frozen configurations (tf_otcycle.tasks.config): flags derived from dataclass fields."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest
from absl import app

from tf_otcycle import comparison, tasks
from tf_otcycle.data import tiff
from tf_otcycle.tasks.base import Task
from tf_otcycle.tasks.config import (
    COMMON_KEYS,
    CommonConfig,
    FlagSpec,
    flag_specs,
    integer,
    own_flags,
    reset,
    string,
)


@dataclasses.dataclass(frozen=True)
class ToyConfig(CommonConfig):
    epochs: int = reset("epochs", 7)
    size: int = integer(16, "Patch size.")
    files: str | None = string(None, "Glob.", may_change=True, before="x")


def test_fields_declare_the_flags_in_order_with_their_metadata():
    specs = {s.name: s for s in flag_specs(ToyConfig)}
    assert [s.name for s in flag_specs(ToyConfig)] == COMMON_KEYS + ["size", "files"]  # a reset keeps its place
    assert specs["epochs"] == dataclasses.replace({s.name: s for s in flag_specs(CommonConfig)}["epochs"], default=7)
    assert specs["files"] == FlagSpec("files", "string", None, "Glob.", (), True, "x")
    assert [s.name for s in own_flags(ToyConfig)] == ["size", "files"]


def test_a_config_is_frozen_read_by_name_and_changed_by_copy():
    config = ToyConfig(size=32)
    assert config.size == 32 and config.epochs == 7
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.size = 8
    other = config.replace(size=8)
    assert (other.size, config.size) == (8, 32)
    with pytest.raises(ValueError, match=r"ToyConfig: unknown flag\(s\) \['sise'\]"):
        config.replace(sise=8)
    with pytest.raises(ValueError, match="unknown flag"):
        ToyConfig.from_values({"size": 8, "patch": 3})


def test_read_access_by_key_is_kept_for_scripts_written_against_dicts():
    config = ToyConfig(size=32)
    assert config["size"] == 32 and config.get("size") == 32 and config.get("absent", 5) == 5
    assert "size" in config and "absent" not in config
    assert {**config}["epochs"] == 7 and dict(config) == config.to_dict() and len(config) == len(COMMON_KEYS) + 2
    with pytest.raises(KeyError):
        config["absent"]  # noqa: B018


def test_every_task_config_reproduces_its_flags_and_defaults():
    for name in tasks.NAMES:
        task = tasks.get(name)
        config = task.default_config()
        assert isinstance(config, task.config_class) and list(config) == task.config_keys
        assert all(config[s.name] == s.default for s in task.all_flags)
        assert task.flags == own_flags(task.config_class)
        assert set(task.common_defaults) == set(COMMON_KEYS)
    micro = tasks.get("microscopy").default_config()
    assert (micro.epochs, micro.decay_epoch, micro.cycle_gradients, micro.gan_weight) == (200, 40, "split", 0.1)
    assert tasks.get("mri").default_config().base_filters == 64


def test_a_task_declared_with_a_flag_tuple_still_gets_a_config_class():
    class Legacy(Task):
        name = "legacy"
        common_defaults = dict(epochs=3)
        flags = (FlagSpec("width", "integer", 5, "Width."),)

    config = Legacy().default_config(width=6)
    assert (config.width, config.epochs, config.batch_size) == (6, 3, 1)
    assert Legacy().config_keys == COMMON_KEYS + ["width"]


def test_the_comparison_config_adds_its_flags_to_the_task():
    task = tasks.get("deblur2d")
    config = comparison.comparison_config(task, methods=["input", "classical"], psf_size=9)
    assert isinstance(config, task.config_class) and isinstance(config, comparison.ComparisonConfig)
    assert (config.methods, config.supervised_loss, config.psf_size, config.decay_epoch) == (
        ["input", "classical"], "l1", 9, 40)
    assert comparison.config_class(task) is comparison.config_class(task)
    assert comparison.comparison_config(task).methods is not comparison.comparison_config(task).methods


def test_the_supervised_baseline_averages_with_its_own_momentum():
    task = tasks.get("deblur2d")
    config = comparison.comparison_config(task, ema_momentum=0.998, supervised_ema_momentum=0.99, base_filters=4,
                                          depth=1, critic_filters=4, steps_per_epoch=2)
    assert comparison.method_config("supervised", config).ema_momentum == 0.99
    assert comparison.method_config("ot_cyclegan", config) is config
    assert comparison.method_config("supervised", config.replace(supervised_ema_momentum=None)).ema_momentum == 0.998
    supervised = comparison.build_model(task, "supervised", config, None)
    ot = comparison.build_model(task, "ot_cyclegan", config, None)
    assert (supervised.optimizer.use_ema, supervised.optimizer.ema_momentum) == (True, 0.99)
    assert ot.g_optimizer.ema_momentum == 0.998
    with pytest.raises(app.UsageError, match="--supervised_ema_momentum must be in"):
        comparison.check_flags(task, config.replace(supervised_ema_momentum=1.0, test_files="a.tif"))


def test_microscopy_settles_the_voxel_size_from_the_first_stack(tmp_path, capsys):
    task = tasks.get("microscopy")
    path = tmp_path / "a_blurred.tif"
    tiff.write_stack(path, np.zeros((4, 8, 8), np.float32), voxel_size=(0.3, 0.05, 0.05))
    data = {"files": {"blurred_files": [path], "test_files": []}}
    config = task.default_config()
    settled = task.settle(config, data)
    assert settled.voxel_size == "0.3,0.05,0.05" and config.voxel_size is None
    assert "--voxel_size=0.3,0.05,0.05 (from " in capsys.readouterr().out
    assert task.settle(config.replace(voxel_size="1,1,1"), data).voxel_size == "1,1,1"  # given: kept


def test_the_package_reads_configs_by_field_name():
    """No ``config["name"]`` or ``config.get("name")`` with a literal name: fields are followed by name."""
    package = Path(__file__).resolve().parents[1] / "tf_otcycle"
    pattern = re.compile(r"""\bconfig(\.get\(|\[)["']\w+["']""")
    found = [f"{p.relative_to(package)}:{i}" for p in package.rglob("*.py") if p.name != "config.py"  # its docs
             for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert not found, found


def test_eval_only_reads_the_training_time_recorded_beside_the_model(tmp_path):
    (tmp_path / "mc").mkdir()
    assert comparison.recorded_seconds(tmp_path, "mc") is None  # a run saved before the record existed
    (tmp_path / "mc" / comparison.TRAINING_RECORD).write_text('{"train_seconds": 12.5}\n')
    assert comparison.recorded_seconds(tmp_path, "mc") == 12.5
    (tmp_path / "mc" / comparison.TRAINING_RECORD).write_text("{not json")
    with pytest.raises(app.UsageError, match=r"mc/training.json is not a training record"):
        comparison.recorded_seconds(tmp_path, "mc")
