"""benchmarks/ablation.py: a smoke run, its rows and inference in chunks (its AUC and IoU are
`cosegkit.diagnostics`, tested in test_diagnostics.py)."""

import numpy as np
import pytest
from benchmark_scripts import load_benchmark

ablation = load_benchmark("ablation")

from cosegkit.config import preset  # noqa: E402

# ---------------------------------------------------------------- smoke run


def test_ablation_smoke_run_writes_a_table_with_its_command(tmp_path):
    out = tmp_path / "ablation.md"
    argv = ["--collections", "synthetic", "--max-images", "4", "--seeds", "0", "--epochs", "1", "--preset", "tiny"]
    ablation.main([*argv, "--rows", "full", "prior", "--out", str(out)])
    assert "python benchmarks/ablation.py " + " ".join(argv) in out.read_text()


# ---------------------------------------------------------------- rows


def test_builtin_rows_switch_what_the_preset_has():
    lite = ablation.builtin_rows(preset("lite"))  # lite: code form, head bias at logit(mean prior)
    assert lite["copeak-form"].changes == {"copeak_form": "paper"}
    assert lite["head-init"].changes == {"head_init": "zero"}
    assert lite["saliency"].changes == {"lambda_copeak": 0.0, "lambda_affinity": 0.0}
    assert lite["saliency+copeak"].changes == {"lambda_affinity": 0.0}
    assert lite["full"].changes == {} and lite["untrained"].changes == {"epochs": 0}
    assert lite["prior"].changes is None
    assert lite["head-init-ddt"].changes == {"head_init": "ddt"}
    assert lite["ddt"].changes == {"head_init": "ddt", "epochs": 0}
    paper = ablation.builtin_rows(preset("paper", copeak_form="paper"))  # zero head, paper form
    assert paper["head-init"].changes == {"head_init": "prior_mean"}
    assert paper["copeak-form"].changes == {"copeak_form": "code"}


def test_select_rows_parses_extra_overrides():
    base = preset("lite")
    rows = ablation.select_rows(base, ["full", "prior"], ["lr_head=3e-4,copeak_form=paper", "feature_stride=16"])
    assert [r.name for r in rows] == [
        "full",
        "prior",
        "extra:lr_head=3e-4,copeak_form=paper",
        "extra:feature_stride=16",
    ]
    assert rows[2].changes == {"lr_head": 3e-4, "copeak_form": "paper"}
    assert rows[3].changes == {"feature_stride": 16}
    assert [r.name for r in ablation.select_rows(base, None, [])] == list(ablation.builtin_rows(base))


@pytest.mark.parametrize(
    "names, extras, message",
    [
        (["no-such-row"], [], "Unknown row"),
        (None, ["not_a_field=1"], "not_a_field"),
        (None, ["seed=3"], "--seeds"),
        (None, ["lr_head"], "key=value"),
    ],
)
def test_select_rows_refuses_mistakes_with_a_message(names, extras, message):
    with pytest.raises(SystemExit, match=message):
        ablation.select_rows(preset("lite"), names, extras)


def test_rows_without_training_run_once():
    base, seeds = preset("lite"), [0, 1, 2]
    rows = ablation.builtin_rows(base)
    assert ablation.row_seeds(rows["full"], base, seeds) == seeds
    assert ablation.row_seeds(rows["untrained"], base, seeds) == seeds  # its random head depends on the seed
    assert rows["untrained"].random_head and not rows["full"].random_head
    assert ablation.row_seeds(rows["ddt"], base, seeds) == [0]
    assert ablation.row_seeds(rows["prior"], base, seeds) == [0]


# ---------------------------------------------------------------- inference in chunks


def test_infer_in_chunks_equals_one_cosegment_call():
    """Each chunk must rank with its own images' priors (√(S · Ŝ)), not the first chunk's."""
    from cosegkit.datasets import synthetic_collection
    from cosegkit.pipeline import cosegment
    from cosegkit.train import fit

    collection = synthetic_collection(n_images=7, size=(96, 112), seed=4)
    config = preset("tiny", backbone="simple", pretrained=False, image_size=64, epochs=1, proposal_max_side=96)
    assert config.ranking.ranking_saliency == "geometric_mean"
    fitted = fit(collection, config)
    whole = cosegment(collection, config, net=fitted)
    proposals = [r.proposals for r in whole.images]
    chunked, logits, _ = ablation.infer(collection, config, fitted, proposals, chunk=3)  # chunks of 3, 2, 2
    for (masks, scores), r, z in zip(chunked, whole.images, logits):
        np.testing.assert_allclose(scores, r.scores, rtol=1e-5)
        assert np.array_equal(masks, r.masks)
        np.testing.assert_allclose(z, r.logits, rtol=1e-5)
