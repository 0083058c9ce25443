"""Model ids: every malformed or unknown id is a usage error that says what is wrong."""
import pytest

from harness.models import UnknownModelError, resolve


@pytest.mark.parametrize("text, message", [
    ("openclip:no-such-arch@openai", "not an open_clip model config"),
    ("openclip:ViT-B-32@no-such-tag", "unknown pretrained tag"),
    ("openclip:ViT-B-32", "name the weights"),
    ("openclip:ViT-B-32@/no/such/file.safetensors", "does not exist"),
    ("torchvision:resnet18@NO_SUCH_WEIGHTS", "IMAGENET1K_V1"),
    ("torchvision:no_such_arch@IMAGENET1K_V1", "not a torchvision classification"),
    ("timm:no_such_arch@in1k", "not a timm architecture"),
    ("timm:resnet18", "name the weights.*a1_in1k"),
    ("timm:resnet18@no_such_tag", "unknown pretrained tag"),
    ("timm:resnet18@/no/such/file.pth", "does not exist"),
    ("timm:vit_tiny_patch16_224@augreg_in21k", "21843 classes"),
    ("timm:coat_lite_medium_384@in1k", "crop_mode 'squash'.*not the harness's protocol"),
    ("timm:gcvit_tiny@in1k", "not on the Hugging Face hub"),
])
def test_invalid_ids_are_usage_errors(text, message):
    with pytest.raises(UnknownModelError, match=message):
        resolve(text)


def test_a_valid_id_resolves_without_listing_every_familys_models(monkeypatch):
    """Listing the known ids imports open_clip and walks the weight caches (seconds of start-up in every worker):
    only an error message needs them."""
    from harness.models.registry import FAMILIES

    def listing_is_not_needed(self):
        raise AssertionError("names() called for a valid id")

    for family in FAMILIES.values():
        monkeypatch.setattr(type(family), "names", listing_is_not_needed)
    model_id, _ = resolve("embedded:synth-cnn")
    assert model_id.line == "synth-cnn"
    with pytest.raises(AssertionError, match="names\\(\\) called"):
        resolve("nosuchfamily:x")
