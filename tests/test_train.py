"""Stage 1: batching, optimiser groups, learning on a synthetic collection, NaN guard, checkpoints and resume."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cosegkit.config import preset
from cosegkit.datasets import synthetic_collection
from cosegkit.losses import pair_indices
from cosegkit.model import CoSaliencyNet
from cosegkit.train import TrainingDivergedError, batch_plan, fit, make_optimizer


@pytest.fixture(scope="module")
def collection():
    return synthetic_collection(n_images=6, seed=0)


def test_batch_plan_covers_every_image_and_fills_the_last_batch():
    rng = np.random.default_rng(0)
    batches = batch_plan(14, 6, rng)
    assert [len(b) for b in batches] == [6, 6, 6]
    first_14 = np.concatenate(batches)[:14]
    assert sorted(first_14.tolist()) == list(range(14))  # a permutation, then repeats
    assert set(batches[-1][2:].tolist()) <= set(range(14))
    # fewer images than a batch: one batch with repeats
    (only,) = batch_plan(4, 6, np.random.default_rng(1))
    assert len(only) == 6 and set(only.tolist()) == {0, 1, 2, 3}


def test_pairs_are_1_4_2_5_3_6():
    n, m = pair_indices(6)
    assert list(zip(n.tolist(), m.tolist())) == [(0, 3), (1, 4), (2, 5)]


def test_optimizer_groups_bias_multiplier_and_weight_decay():
    config = preset("lite", lr=1e-5, lr_head=1e-4, trainable_blocks=1)  # biases ×2, weight decay 5e-4 (spec §5)
    net = CoSaliencyNet("simple", pretrained=False)
    net.set_trainable(config.trainable_blocks)
    opt = make_optimizer(net, config)
    groups = {g["name"]: g for g in opt.param_groups}
    assert groups["head_w"]["lr"] == 1e-4 and groups["head_b"]["lr"] == 2e-4
    assert groups["backbone_w"]["lr"] == 1e-5 and groups["backbone_norm"]["lr"] == 1e-5  # its convolutions have no bias
    assert groups["head_w"]["weight_decay"] == 5e-4 and groups["head_b"]["weight_decay"] == 0.0
    n_trained = sum(p.numel() for g in opt.param_groups for p in g["params"])
    n_expected = sum(p.numel() for p in net.backbone[-1].parameters()) + sum(p.numel() for p in net.head.parameters())
    assert n_trained == n_expected  # the frozen front is not optimised
    assert not opt.defaults.get("decoupled_weight_decay", False)  # classic L2 (Adam, not AdamW)


def _inside_outside(result, collection):
    with torch.no_grad():
        S = result.net(result.net.normalize(result.inputs)).saliency
    ratios = []
    for i, gt in enumerate(collection.gt_masks):
        union = torch.from_numpy(gt.any(0))[None, None].float()
        g = F.interpolate(union, size=S.shape[-2:], mode="nearest")[0, 0] > 0.5
        ratios.append((float(S[i][g].mean()), float(S[i][~g].mean())))
    inside, outside = np.mean(ratios, axis=0)
    return inside, outside


def test_training_lowers_the_loss_and_learns_the_objects(collection):
    config = preset("tiny")
    result = fit(collection, config)
    first, last = result.history[0]["total"], result.history[-1]["total"]
    assert last < first
    inside, outside = _inside_outside(result, collection)
    assert inside >= 1.5 * outside, (inside, outside)


def test_same_seed_same_result_and_resume_equals_uninterrupted(collection, tmp_path):
    config = preset("tiny", epochs=3, image_size=96)
    full = fit(collection, config, checkpoint=tmp_path / "full.pt")
    again = fit(collection, config)
    for (k, a), b in zip(full.net.state_dict().items(), again.net.state_dict().values()):
        assert torch.equal(a, b), k
    # interrupt after 1 epoch, then resume to 3
    ckpt = tmp_path / "run.pt"
    fit(collection, config.replace(epochs=1), checkpoint=ckpt)
    resumed = fit(collection, config, checkpoint=ckpt, resume=True)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    for (k, a), b in zip(full.net.state_dict().items(), resumed.net.state_dict().values()):
        assert torch.equal(a, b), k
    assert resumed.history == full.history


def test_resume_refuses_a_checkpoint_of_other_images(collection, tmp_path):
    config = preset("tiny", epochs=1, image_size=64)
    ckpt = tmp_path / "run.pt"
    fit(collection, config, checkpoint=ckpt)
    other = synthetic_collection(n_images=6, seed=1)
    with pytest.raises(ValueError, match="other images or another configuration"):
        fit(other, config, checkpoint=ckpt, resume=True)


def test_nan_stops_with_a_clear_message_and_keeps_the_checkpoint(collection, tmp_path):
    config = preset("tiny", epochs=2, image_size=64)
    priors = torch.full((len(collection), 64, 64), 0.3)
    priors[0, 0, 0] = float("nan")
    with pytest.raises(TrainingDivergedError, match="not finite"):
        fit(collection, config, priors=priors, checkpoint=tmp_path / "c.pt")
    with pytest.raises(ValueError, match="NaN"):
        fit(collection, config, user_maps=[np.full((8, 8), np.nan)] * len(collection))


def test_one_image_is_refused():
    from cosegkit.data import Collection, CollectionError

    with pytest.raises((ValueError, CollectionError), match="at least 2"):
        Collection.from_arrays([np.zeros((32, 32, 3), np.uint8)])


def test_ddt_head_init_starts_at_ddt_and_resumes_exactly(collection, tmp_path):
    from cosegkit.ddt import ddt_head

    config = preset("tiny", epochs=0, head_init="ddt")  # 256 px: an 8 × 8 grid (at 96 px, 3 × 3 cells hide the objects)
    start = fit(collection, config)
    with torch.no_grad():
        features = start.net.backbone(start.net.normalize(start.inputs))
    weight, bias = ddt_head(features, start.priors)
    torch.testing.assert_close(start.net.head.weight.flatten().double(), weight, rtol=1e-5, atol=1e-6)
    assert start.net.head.bias.item() == pytest.approx(bias, rel=1e-5)
    inside, outside = _inside_outside(start, collection)
    assert inside > 3 * outside, (inside, outside)  # DDT finds the shared objects before any training (0.31 vs 0.05)
    # the initialisation happens once: a resumed run keeps the trained head, not a fresh DDT one
    config = config.replace(epochs=2, image_size=96)
    full = fit(collection, config)
    ckpt = tmp_path / "ddt.pt"
    fit(collection, config.replace(epochs=1), checkpoint=ckpt)
    resumed = fit(collection, config, checkpoint=ckpt, resume=True)
    for (k, a), b in zip(full.net.state_dict().items(), resumed.net.state_dict().values()):
        assert torch.equal(a, b), k


def test_unknown_head_init_is_refused(collection):
    with pytest.raises(ValueError, match="head_init must be one of"):
        fit(collection, preset("tiny", epochs=0, image_size=64, head_init="random"))


def test_feature_centering_changes_the_pair_losses_only(collection):
    from cosegkit.model import to_input
    from cosegkit.train import batch_losses, compute_priors

    config = preset("tiny", image_size=96, prior_work_size=64, trainable_blocks=None)  # the batch is the images
    net = CoSaliencyNet.from_config(config)
    net.init_head_bias(0.2)
    with torch.no_grad():
        net.head.weight.normal_(0, 0.05)  # a head that is not flat, so S̃ varies and every term has a gradient
    x = net.normalize(to_input(collection.images, config.image_size))
    priors = compute_priors(collection, config)
    with torch.no_grad():
        raw = batch_losses(net, x, priors, config.replace(feature_centering="none"))
        centred = batch_losses(net, x, priors, config.replace(feature_centering="batch"))
    assert torch.equal(raw["saliency"], centred["saliency"])  # the saliency loss never reads T
    assert not torch.isclose(raw["affinity"], centred["affinity"])
    # centred, T takes negative values, and the affinity loss (whose second term is α (S̃n − S̃m)² T) can go below 0
    # only through them; uncentred it is a sum of non-negative terms
    assert raw["affinity"] >= 0


@pytest.mark.parametrize("centering", ["none", "batch"])
def test_training_loss_is_the_sum_of_the_public_per_pair_losses(collection, centering):
    """What training minimises is built from the functions notebook 03 teaches, pair by pair, image by image."""
    from cosegkit.correlation import center_features, co_peaks, correlation_tensor, normalize_features, saliency_guided
    from cosegkit.losses import affinity_loss, copeak_loss, saliency_loss
    from cosegkit.model import to_input
    from cosegkit.train import batch_losses, compute_priors

    config = preset("tiny", image_size=96, prior_work_size=64, trainable_blocks=None, feature_centering=centering)
    config = config.replace(alpha=3.0, copeak_form="paper", lambda_copeak=0.7, lambda_affinity=0.2)
    net = CoSaliencyNet.from_config(config).eval()  # eval: both forward passes below see the same network
    net.init_head_bias(0.2)
    with torch.no_grad():
        net.head.weight.normal_(0, 0.05)
    x = net.normalize(to_input(collection.images, config.image_size))
    priors = compute_priors(collection, config)
    with torch.no_grad():
        losses = batch_losses(net, x, priors, config)
        features = net.backbone(x)
        out = net.heads(features, out_size=priors.shape[-2:])
    if centering == "batch":
        features = center_features(features)  # over the whole batch, before it is split into pairs
    f_hat = normalize_features(features)  # eps 0.01, the spec's
    copeak = affinity = 0.0
    for n, m in [(0, 3), (1, 4), (2, 5)]:  # one pair at a time, as notebook 03 computes them
        fn, fm, sn, sm = f_hat[n : n + 1], f_hat[m : m + 1], out.saliency_low[n : n + 1], out.saliency_low[m : m + 1]
        Ts = saliency_guided(correlation_tensor(fn, fm), sn, sm)
        copeak += copeak_loss(Ts, co_peaks(Ts), form="paper")[0]
        affinity += affinity_loss(fn, fm, sn, sm, alpha=3.0)[0]
    saliency = saliency_loss(out.saliency, priors).sum()
    torch.testing.assert_close(losses["copeak"], copeak)
    torch.testing.assert_close(losses["affinity"], affinity)
    torch.testing.assert_close(losses["saliency"], saliency)
    torch.testing.assert_close(losses["total"], 0.7 * copeak + 0.2 * affinity + saliency)


def test_unknown_feature_centering_is_refused_before_training(collection):
    with pytest.raises(ValueError, match="feature_centering must be one of"):
        fit(collection, preset("tiny", epochs=0, image_size=64, feature_centering="collection"))


def test_resume_ignores_inference_options_and_refuses_training_changes(collection, tmp_path):
    """The checkpoint fingerprint covers the fields that change training (``TRAINING_FIELDS``) and nothing else."""
    config = preset("tiny", epochs=1, image_size=64)
    ckpt = tmp_path / "run.pt"
    fit(collection, config, checkpoint=ckpt)
    resumed = fit(
        collection, config.replace(epochs=2, beta=0.5, nms_iou=0.3, inference_size=128), checkpoint=ckpt, resume=True
    )
    assert [h["epoch"] for h in resumed.history] == [1, 2]  # epoch 1 came from the checkpoint
    with pytest.raises(ValueError, match="other images or another configuration"):
        fit(collection, config.replace(epochs=2, lr=2 * config.lr), checkpoint=ckpt, resume=True)


def test_every_config_field_is_sorted_into_training_or_not():
    """A new Config field must be classified: add it to ``TRAINING_FIELDS`` when it changes training, else here."""
    import dataclasses

    from cosegkit.config import TRAINING_FIELDS, Config

    not_training = {
        "inference_size",
        "ranking",  # every option of the last step (cosegkit.ranking.RankingOptions)
        "proposal_max_side",
        "proposals",
        "epochs",
        "device",
        "progress",
    }
    names = {f.name for f in dataclasses.fields(Config)}
    assert set(TRAINING_FIELDS) | not_training == names
    assert not set(TRAINING_FIELDS) & not_training
    assert {"lr", "seed", "backbone", "prior", "feature_centering", "lambda_copeak"} <= set(TRAINING_FIELDS)


def test_batch_norm_parameters_get_the_plain_learning_rate_and_no_weight_decay():
    config = preset("lite", lr=1e-5, lr_head=1e-4, trainable_blocks=1)
    net = CoSaliencyNet("simple", pretrained=False)
    net.set_trainable(config.trainable_blocks)
    norms = [p for m in net.backbone[-1].modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters()]
    assert norms  # the last block of the simple backbone has a batch norm
    groups = {g["name"]: g for g in make_optimizer(net, config).param_groups}
    assert groups["backbone_norm"]["lr"] == 1e-5 and groups["backbone_norm"]["weight_decay"] == 0.0
    ids = {id(p) for p in groups["backbone_norm"]["params"]}
    assert ids == {id(p) for p in norms}
    assert "backbone_b" not in groups  # not treated as biases (×2 lr): the simple backbone's convolutions have none
    assert not ids & {id(p) for p in groups["backbone_w"]["params"]}  # nor as weights (decayed)


@pytest.mark.parametrize("n_images", [2, 3, 4, 5, 7, 8, 13])
def test_no_image_is_paired_with_itself(n_images):
    """Pairs are (0, B/2), (1, B/2 + 1), …: no batch of any epoch puts an image against itself."""
    n, m = pair_indices(6)
    for seed in range(200):
        rng = np.random.default_rng(seed)
        for _ in range(3):  # consecutive epochs share the generator
            batches = batch_plan(n_images, 6, rng)
            assert sorted(np.concatenate(batches)[:n_images].tolist()) == list(range(n_images))  # every image once
            for batch in batches:
                assert len(batch) == 6
                assert not np.any(batch[n.numpy()] == batch[m.numpy()]), (seed, batch)
