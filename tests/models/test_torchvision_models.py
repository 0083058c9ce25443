"""The `torchvision` family: weights from the torch hub cache or a file keep the pixel-space contract."""
import pytest
import torch
from safetensors.torch import save_file

from harness.models import load_model
from harness.files import sha256_file
from tiny_models import CPU


@pytest.fixture(scope="module")
def resnet18_state():
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.resnet18(weights=None).state_dict()


@pytest.mark.parametrize("where", ["hub-cache", "pth", "safetensors"])
def test_torchvision_weights_from_hub_cache_or_file_keep_the_pixel_contract(caches, resnet18_state, where):
    if where == "hub-cache":
        path = caches / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
        path.parent.mkdir(parents=True)
        torch.save(resnet18_state, path)
        text = "torchvision:resnet18@IMAGENET1K_V1"
    elif where == "pth":
        path = caches / "resnet18.pth"
        torch.save(resnet18_state, path)
        text = f"torchvision:resnet18@{path}"
    else:
        path = caches / "resnet18.safetensors"
        save_file(resnet18_state, str(path))
        text = f"torchvision:resnet18@{path}"
    model = load_model(text, CPU)
    assert model.provenance["weights_sha256"] == sha256_file(path)
    assert (model.preprocess.size, model.preprocess.resize, model.preprocess.interpolation) == (224, 256, "bilinear")
    assert model.provenance["preprocess"]["mean"] == [0.485, 0.456, 0.406]
    assert len(model.classnames) == 1000 and model.classnames[0] == "tench"
    assert torch.equal(model.classifier.features.fc.weight, resnet18_state["fc.weight"])
    pixels = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        normalized = (pixels - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / \
            torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        assert torch.allclose(model.classifier(pixels), model.classifier.features(normalized))
