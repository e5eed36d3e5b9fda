"""The arithmetic of benchmarks/speed.py on made-up timings: floors, ratios, growth and targets."""

import importlib.util
import math
from pathlib import Path

import pytest

SPEC = importlib.util.spec_from_file_location("speed", Path(__file__).parents[1] / "benchmarks" / "speed.py")
speed = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(speed)


def record(preset="lite", n=12, **seconds):
    """A measured configuration as `measure` returns it, with round numbers."""
    base = {
        "imports": 1.0,
        "load": 0.5,
        "prior": 1.0,
        "training": 13.0,
        "training set-up": 2.0,
        "training per epoch": 1.1,
        "co-saliency": 1.0,
        "heat maps": 6.0,
        "z+ conversion": 0.1,
        "proposals": 6.0,
        "ranking": 3.0,
        "inference wall": 16.0,
        "evaluation": 0.05,
        "rerank": 0.2,
    }
    base.update(seconds)
    base["pipeline"] = sum(base[k] for k in ("prior", "training", "co-saliency", "heat maps", "proposals", "ranking"))
    return {
        "preset": preset,
        "n": n,
        "device": "cpu",
        "config": {"epochs": 10, "batch_size": 6},
        "seconds": base,
        "floor": {
            "training": {
                "seconds per pass": 1.0,
                "seconds per real step": 1.2,
                "passes": 10,
                "measured passes": 10,
                "seconds": 10.0,
            },
            "heat maps": {
                "forward seconds per image": 0.1,
                "backward seconds per peak": 0.05,
                "z+ forward seconds per image": 0.35,
                "z+ backward seconds per peak": 0.055,
                "measured images": 4,
                "measured peaks": 30,
                "peaks": 56,
                "all peaks": 76,
                "seconds": 4.0,
                "seconds, all peaks": 5.0,
            },
        },
        "rss_mb": {"training": 1000.0, "inference": 1500.0},
        "rss_sampled": True,
        "ru_maxrss_mb": 1600.0,
        "cuda_mb": {},
        "counts": {
            "peaks per image": 76 / 12,
            "used peaks per image": 56 / 12,
            "proposals per image": 5000.0,
            "instances per image": 3.0,
        },
        "metrics": {"mAP_r@0.25": 0.1, "mAP_r@0.5": 0.05, "CorLoc_r": 0.2},
    }


def test_epoch_seconds_splits_setup_from_epochs():
    assert speed.epoch_seconds(0.0, [5.0, 7.0, 9.0]) == (3.0, 2.0)  # epochs 2 s apart; the first took 5 = 3 + 2
    setup, per_epoch = speed.epoch_seconds(0.0, [4.0])
    assert math.isnan(setup) and math.isnan(per_epoch)  # one epoch cannot be split
    assert speed.epoch_seconds(1.0, [])[0] == 0.0


def test_floor_ratios_by_hand():
    r = speed.floor_ratios(record())
    assert r["training"] == pytest.approx(13.0 / 10.0)
    assert r["training epochs"] == pytest.approx(1.1 * 10 / 10.0)  # set-up left out
    assert r["heat maps"] == pytest.approx(6.0 / 4.0)
    assert r["both"] == pytest.approx((13.0 + 6.0) / (10.0 + 4.0))
    assert r["both, all peaks"] == pytest.approx((13.0 + 6.0) / (10.0 + 5.0))


def test_growth_flags_superlinear_stages_only():
    factor, verdict = speed.growth([1.0, 1.1, 1.5])
    assert factor == pytest.approx(1.5) and "faster" in verdict
    factor, verdict = speed.growth([2.0, 1.5, 1.2])  # a fixed cost shared by more images
    assert factor == pytest.approx(0.6) and verdict == "linear or better"
    assert math.isnan(speed.growth([1.0])[0])


def test_targets_block_says_which_targets_are_met():
    lines = speed.targets([record(), record(preset="tiny")])
    by_name = {line.split("|")[1].strip(): line for line in lines[2:]}
    assert by_name["full pipeline"].rstrip(" |").endswith("yes")  # 30 s < 180 s
    assert "0.500 s" in by_name["proposals per image"] and by_name["proposals per image"].rstrip(" |").endswith("yes")
    assert (
        "0.200 s" in by_name["`Result.rerank`, whole collection"]
        and "**no**" in by_name["`Result.rerank`, whole collection"]
    )
    assert (
        f"{19 / 14:.3f}" in by_name["(training + heat maps) / floor"]
        and "**no**" in by_name["(training + heat maps) / floor"]
    )


def test_targets_block_without_the_target_configuration():
    lines = speed.targets([record(preset="tiny", n=6)])
    assert "not measured" in lines[-1]


def test_tables_have_one_column_per_configuration():
    runs = [record(n=6, training=7.0), record(n=12)]
    table = speed.stage_table(runs)
    assert table[0].count("|") == 4  # quantity + 2 configurations
    ratio_row = next(line for line in table if line.startswith("| **(training + heat maps) / floor**"))
    assert f"**{(7.0 + 6.0) / 14.0:.2f}**" in ratio_row and f"**{19 / 14:.2f}**" in ratio_row
    growth = speed.growth_table(runs)
    training_row = next(line for line in growth if line.startswith("| training |"))
    assert f"{7.0 / 6:.3f}" in training_row and f"{13.0 / 12:.3f}" in training_row
