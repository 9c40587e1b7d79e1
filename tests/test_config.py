import json

import pytest

from pipeline.errors import CapcacheError
from pipeline.training.config import PRESETS, TrainConfig, resolve_config


def test_overrides_are_typed_and_nested():
    cfg = resolve_config(None, None, ["optim.lr=1e-3", "model.dropout=0.25", "epochs=3", "amp=false",
                                      "model.glove_path=none", "data.in_memory=0"])
    assert cfg.optim.lr == 1e-3 and cfg.model.dropout == 0.25 and cfg.epochs == 3
    assert cfg.amp is False and cfg.model.glove_path is None and cfg.data.in_memory is False


def test_precedence_preset_then_file_then_overrides():
    cfg = resolve_config("resnet-lstm-baseline", {"epochs": 7, "optim": {"lr": 0.01}}, ["epochs=9"])
    assert cfg.decoder == "show_tell" and cfg.model.num_layers == 2 and cfg.teacher_forcing == 0.7
    assert cfg.optim.lr == 0.01 and cfg.epochs == 9
    assert cfg.optim.plateau_patience == 3  # untouched preset value kept


@pytest.mark.parametrize("bad, message", [
    (["optim.lrr=1"], "unknown config field"),
    (["nope.lr=1"], "unknown config section"),
    (["epochs=three"], "expected int"),
    (["epochs"], "not KEY=VALUE"),
])
def test_bad_overrides_are_one_line_errors(bad, message):
    with pytest.raises(CapcacheError, match=message):
        resolve_config(None, None, bad)


def test_unknown_preset_and_file_keys():
    with pytest.raises(CapcacheError, match="unknown preset"):
        resolve_config("resnet-gpt", None, [])
    with pytest.raises(CapcacheError, match="model.hiden_dim"):
        resolve_config(None, {"model": {"hiden_dim": 3}}, [])


def test_config_round_trips_through_json():
    for name in PRESETS:
        cfg = resolve_config(name, None, [])
        assert TrainConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
