"""The model catalog as data: shipped entries, deployment overrides, and billing from it."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from videogate.billing import Billing, charge
from videogate.catalog import SEEDANCE_2, SEEDANCE_2_5, attach_aliases, load_catalog
from videogate.pricing import seedance_tokens
from videogate.request import GenerationRequest
from videogate.routing import Router
from videogate.settings import AliasConfig, ModelConfig, PriceConfig, Settings


def test_shipped_entries_and_a_deployment_override(tmp_path: Path) -> None:
    models, aliases = load_catalog(
        [
            ModelConfig(name=SEEDANCE_2_5, max_duration=20),
            ModelConfig(name="my-model", price=PriceConfig(unit="token", per_million=Decimal(2))),
        ],
        [AliasConfig(name="house", model="my-model")],
    )
    attach_aliases(models, aliases)
    assert models[SEEDANCE_2_5].max_duration == 20  # overridden
    assert models[SEEDANCE_2_5].limits.max_images == 30  # kept from the shipped entry
    assert models["my-model"].aliases == ("house",) and models["my-model"].max_duration == 15
    assert "4k" in models[SEEDANCE_2].resolutions
    assert models[SEEDANCE_2].price.for_resolution("1080p").per_million == Decimal("7.7")
    assert models[SEEDANCE_2].price.for_resolution("720p").per_million == Decimal("7.0")
    assert models[SEEDANCE_2].output_formats == ("mp4",)  # the default: mov is 2.5's
    assert models[SEEDANCE_2_5].output_formats == ("mp4", "mov")
    mov = load_catalog([ModelConfig(name=SEEDANCE_2, output_formats=("mp4", "mov"))])[0]
    assert mov[SEEDANCE_2].output_formats == ("mp4", "mov")  # a deployment may offer it


def test_auto_duration_is_held_at_the_worst_case_and_charged_as_produced(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    models, _ = load_catalog()
    billing = Billing(settings, Router([]), models)
    req = GenerationRequest(model=SEEDANCE_2_5, prompt="p", duration=-1)
    hold, snapshot = billing.estimate(req, "default", 1280, 720)
    longest = seedance_tokens(1280, 720, 30)  # 2.5's longest clip
    assert hold == round(Decimal(longest) * Decimal("10.7"))
    produced = charge(snapshot, None, 1280, 720, 12.0)  # the upstream made 12 s
    assert produced == round(Decimal(seedance_tokens(1280, 720, 12)) * Decimal("10.7"))
    assert 0 < produced < hold
