import json

from harness.versions import PIXEL_LIBRARIES, cpu, library_version, pixel_library_versions, versions


def test_every_pixel_library_is_versioned_here():
    found = pixel_library_versions()
    assert set(found) == set(PIXEL_LIBRARIES) and all(found.values()), found
    assert set(PIXEL_LIBRARIES) <= set(versions())
    assert library_version("opencv") is not None


def test_cpu_names_the_processor_and_the_kernels_chosen_on_it():
    described = cpu()
    json.dumps(described)
    assert described["model"] and described["machine"]
    assert described["numpy"]["baseline"] and described["numpy"]["cpu"]
    assert any(pool["internal_api"] == "openblas" and pool["architecture"] for pool in described["blas"])
    assert described["opencv"]["features"] and described["torch"]["cpu_capability"]
