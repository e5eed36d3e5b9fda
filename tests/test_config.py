"""Config: the knobs a user turns, validated in one place; the ranking's options nested and reachable by name."""

import dataclasses

import pytest

from cosegkit import Config, preset
from cosegkit.ranking import RankingOptions


def test_config_holds_at_most_25_knobs():
    assert len(dataclasses.fields(Config)) <= 25


def test_flat_names_reach_the_ranking_options():
    cfg = preset("lite", beta=0.6, nms_iou=0.3, epochs=3)
    assert (cfg.ranking.beta, cfg.ranking.nms_iou, cfg.epochs) == (0.6, 0.3, 3)
    assert cfg.ranking.gamma_mode == "area"  # the preset's other ranking options stay
    again = cfg.replace(gamma=1e-6)
    assert (again.ranking.gamma, again.ranking.beta) == (1e-6, 0.6)
    assert cfg.ranking.gamma == 3e-6  # the original is left as it was
    both = cfg.replace(ranking=RankingOptions(), beta=0.9)  # a whole new set, then one name on top
    assert both.ranking == RankingOptions(beta=0.9)
    assert preset("tiny").ranking.heatmap_power == 3.0 and preset("dino").ranking.peak_threshold == 0.0


def test_unknown_names_raise_type_error():
    with pytest.raises(TypeError, match="no field"):
        preset("lite", betta=0.6)
    with pytest.raises(TypeError, match="no option"):
        RankingOptions().replace(epochs=3)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(backbone="resnet50"), r"Config.backbone must be one of \('vgg16'"),
        (dict(head_init="random"), "Config.head_init must be one of"),
        (dict(prior="itti"), "Config.prior must be one of"),
        (dict(proposals="mcg"), "Config.proposals must be one of"),
        (dict(pretrained="yes"), "Config.pretrained must be True, False or 'timm'"),
        (dict(image_size=0), "Config.image_size must be ≥ 1"),
        (dict(gamma_mode="meters"), r"RankingOptions.gamma_mode must be one of \('pixels', 'area'\), got 'meters'"),
        (dict(heatmap_norm="l2"), "RankingOptions.heatmap_norm must be one of"),
        (dict(instance_score="peak"), "RankingOptions.instance_score must be one of"),
        (dict(peak_threshold="mean"), "peak_threshold must be 'median' or a number"),
        (dict(nms_iou=1.5), r"nms_iou must be in \[0, 1\]"),
        (dict(contour_width=0), "contour_width must be ≥ 1"),
    ],
)
def test_invalid_values_name_the_field_and_the_choices(change, message):
    with pytest.raises(ValueError, match=message):
        preset("lite", **change)


def test_to_dict_nests_the_ranking_options():
    d = preset("paper").to_dict()
    assert d["ranking"]["beta"] == 0.8 and d["ranking"]["gamma"] == 1e-5 and d["backbone"] == "vgg16"
