"""The network: backbones, the lite key mapping (checked by classifying a real photo), head, upsampling."""

import numpy as np
import pytest
import skimage.data
import torch

from cosegkit.config import preset, resolve_device
from cosegkit.model import (
    CoSaliencyNet,
    WeightsUnavailableError,
    bilinear_kernel,
    fixed_upsampler,
    lite0_classifier,
    to_input,
    upsample_logits,
    vgg16_backbone,
)

# ImageNet classes 281–285 are the domestic cats (tabby, tiger cat, Persian, Siamese, Egyptian cat).
CAT_CLASSES = set(range(281, 286))


def test_lite_weights_classify_a_cat():
    """A broken key mapping (or wrong input normalisation) would not call Chelsea a cat."""
    model = lite0_classifier(pretrained=True)
    x = to_input([skimage.data.chelsea()], 224)
    x = (x - 0.5) / 0.5
    with torch.no_grad():
        probs = model(x).softmax(-1)[0]
    top = int(probs.argmax())
    assert top in CAT_CLASSES
    assert float(probs[sorted(CAT_CLASSES)].sum()) > 0.8


def test_lite_weights_classify_a_non_cat():
    """And a rocket is not a cat: the mapping does more than bias the output towards one class."""
    model = lite0_classifier(pretrained=True)
    x = (to_input([skimage.data.rocket()], 224) - 0.5) / 0.5
    with torch.no_grad():
        top5 = model(x).softmax(-1)[0].topk(5).indices.tolist()
    assert not CAT_CLASSES & set(top5)
    assert 812 in top5 or 657 in top5 or 744 in top5  # space shuttle, missile, projectile


def test_lite_backbone_shapes_and_nonnegative():
    net = CoSaliencyNet("efficientnet_lite0")
    out = net(torch.randn(2, 3, 128, 160))
    assert out.features.shape == (2, 1280, 4, 5)
    assert out.logits.shape == (2, 1, 4, 5)
    assert out.saliency_low.shape == (2, 4, 5)
    assert out.saliency.shape == (2, 128, 160)
    assert float(out.features.detach().min()) >= 0.0  # ReLU6 output: correlations lie in [0, 1)
    assert len(net.backbone) == 9


def test_zero_initialised_head_gives_one_half():
    net = CoSaliencyNet("simple", pretrained=False)
    out = net(torch.randn(1, 3, 64, 64))
    assert torch.allclose(out.saliency, torch.full_like(out.saliency, 0.5))
    assert torch.all(net.head.weight == 0) and torch.all(net.head.bias == 0)


def test_head_bias_at_prior_mean():
    net = CoSaliencyNet("simple", pretrained=False)
    net.init_head_bias(0.1)
    out = net(torch.randn(1, 3, 64, 64))
    assert torch.allclose(out.saliency, torch.full_like(out.saliency, 0.1), atol=1e-6)


def test_bilinear_upsampling_is_fixed_and_interpolates():
    up = fixed_upsampler(32)
    assert not up.weight.requires_grad
    # The bare deconvolution keeps a constant only away from the borders …
    z = torch.full((1, 1, 4, 4), -2.0)
    bare = up(z)
    assert torch.allclose(bare[0, 0, 16:-16, 16:-16], torch.full((96, 96), -2.0), atol=1e-5)
    assert float(bare[0, 0, 0, 0]) > -1.0  # faded towards 0 at the corner
    # … with edge padding it stays constant everywhere, borders included
    out = upsample_logits(up, z)
    assert out.shape == (1, 1, 128, 128)
    assert torch.allclose(out, torch.full_like(out, -2.0), atol=1e-5)
    # Edge-padded transposed conv = bilinear interpolation (align_corners=False, edges clamped)
    z = torch.randn(2, 1, 3, 5)
    expected = torch.nn.functional.interpolate(z, scale_factor=32, mode="bilinear", align_corners=False)
    assert torch.allclose(upsample_logits(up, z), expected, atol=1e-5)
    k = bilinear_kernel(4)
    assert torch.allclose(k[1:3, 1:3], torch.full((2, 2), 0.5625))


def test_vgg16_structure_without_weights():
    backbone = vgg16_backbone(pretrained=False)
    assert len(backbone) == 6  # conv1..conv5 with pools, then fc6 as a 7x7 conv
    fc6 = backbone[-1][0]
    assert fc6.kernel_size == (7, 7) and fc6.padding == (3, 3) and fc6.out_channels == 4096
    with torch.no_grad():
        out = backbone(torch.randn(1, 3, 64, 64))
    assert out.shape == (1, 4096, 2, 2) and float(out.min()) >= 0


def test_vgg16_offline_error_names_lite(monkeypatch, tmp_path):
    """Without cached weights and without internet, the error must say what to do."""
    import torchvision.models as tvm

    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(tvm.VGG16_Weights.IMAGENET1K_V1, "get_state_dict", offline, raising=False)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsUnavailableError, match="lite"):
        vgg16_backbone(pretrained=True)


def test_trainable_blocks_front_tail_equal_full():
    net = CoSaliencyNet("efficientnet_lite0").eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        full = net.backbone(x)
        split = net.tail(net.front(x, 3), 3)
    assert torch.allclose(full, split)
    net.set_trainable(3)
    trainable = [i for i, b in enumerate(net.backbone) if any(p.requires_grad for p in b.parameters())]
    assert trainable == [6, 7, 8]
    assert net.head.weight.requires_grad


def test_batchnorm_stays_in_eval_mode_when_training():
    net = CoSaliencyNet("simple", pretrained=False).train()
    bns = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(not m.training for m in bns)


def test_presets_and_device():
    assert preset("paper").backbone == "vgg16" and preset("paper").lr == 1e-6 and preset("paper").epochs == 40
    assert preset("lite").backbone == "efficientnet_lite0"
    assert preset("tiny").image_size < preset("lite").image_size
    assert preset("lite", epochs=3).epochs == 3
    with pytest.raises(ValueError, match="Unknown preset"):
        preset("huge")
    with pytest.raises(TypeError, match="no field"):
        preset("lite", epoch=3)
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type in {"cpu", "cuda", "mps"}


def test_replace_leaves_inference_size_alone():
    """A config that reads images at 704 after training at 448: a new image_size changes nothing else."""
    fine = preset("lite", inference_size=704)
    assert (fine.image_size, fine.input_size_at_inference) == (448, 704)
    assert fine.replace(image_size=224).inference_size == 704
    assert fine.replace(image_size=256, inference_size=None).input_size_at_inference == 256
    assert fine.replace(epochs=3).inference_size == 704
    for name in ("paper", "lite", "tiny"):  # the presets read at image_size, also after image_size changes
        assert preset(name).inference_size is None
        assert preset(name, image_size=224).input_size_at_inference == 224


def test_to_input_range_and_shape():
    x = to_input([np.full((30, 50, 3), 255, np.uint8), np.zeros((10, 10, 3), np.uint8)], 64)
    assert x.shape == (2, 3, 64, 64)
    assert torch.allclose(x[0], torch.ones_like(x[0])) and torch.all(x[1] == 0)


@pytest.mark.parametrize("backbone", ["simple", "efficientnet_lite0"])
def test_stride_16_doubles_the_grid_and_keeps_the_weights(backbone):
    pretrained = backbone != "simple"
    torch.manual_seed(0)
    coarse = CoSaliencyNet(backbone, pretrained=pretrained, stride=32)
    torch.manual_seed(0)
    fine = CoSaliencyNet(backbone, pretrained=pretrained, stride=16)
    x = torch.randn(1, 3, 128, 160)
    out = fine(x)
    assert out.logits.shape == (1, 1, 8, 10) and out.saliency.shape == (1, 128, 160)
    assert coarse(x).logits.shape == (1, 1, 4, 5)
    for (name, a), (_, b) in zip(coarse.state_dict().items(), fine.state_dict().items()):
        if not name.startswith("upsample."):  # the fixed upsampler is ×16 instead of ×32
            assert torch.equal(a, b), name  # dilation changes the sampling, not the learned parameters
    assert fine.upsample.weight.shape[-1] == 32 and coarse.upsample.weight.shape[-1] == 64
    with pytest.raises(ValueError, match="feature_stride"):
        CoSaliencyNet(backbone, pretrained=False, stride=8)


def test_vgg_stride_16_dilates_fc6():
    backbone = vgg16_backbone(pretrained=False, stride=16)
    fc6 = backbone[-1][0]
    assert fc6.dilation == (2, 2) and fc6.padding == (6, 6)
    assert backbone(torch.randn(1, 3, 64, 96)).shape == (1, 4096, 4, 6)
