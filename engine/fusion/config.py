"""Configuration of the fusion stage: the colour-map recipe (each with its own section) and the
region statistics every recipe feeds."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator


class MellmRecipeConfig(BaseModel):
    """``mellm``: the authors' released v1 colour map (nearest 30° hue bins; head motion = the nose-window
    mean)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    nose_window: int = Field(11, ge=1, description="side of the nose-tip window whose mean flow is removed")


class CalibratedRecipeConfig(BaseModel):
    """``calibrated``: brightness in pixels, head motion as a rigid-landmark fit, optional legend."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    px_full_scale: float = Field(3.0, gt=0, description="magnitude (crop px) shown at full brightness")
    legend: bool = Field(True, description="append the direction/magnitude legend strip")


class FusionConfig(BaseModel):
    """The motion-enhanced colour map and region statistics."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    recipe: str = Field(
        "mellm",
        description="colour map: 'mellm' (the authors' released v1 map) or 'calibrated' (px scale, rigid "
        "head fit, legend)",
    )
    png_level: int = Field(3, ge=0, le=9, description="PNG compression level of the published map")
    region_margin: float = Field(
        0.02, ge=0, le=0.2, description="dilation of each region's hull, as a fraction of the face size"
    )
    max_percentile: float = Field(
        95.0, gt=0, le=100, description="percentile of flow magnitude reported as a region's robust max"
    )
    mellm: MellmRecipeConfig = Field(
        default_factory=MellmRecipeConfig, description="the mellm recipe's options"
    )
    calibrated: CalibratedRecipeConfig = Field(
        default_factory=CalibratedRecipeConfig, description="the calibrated recipe's options"
    )

    @field_validator("recipe")
    @classmethod
    def _known_recipe(cls, name: str) -> str:
        from engine.fusion.recipes import RECIPES

        return RECIPES.resolve_name(name)  # UnknownNameError is a ValueError: pydantic reports it

    def recipe_params(self) -> dict[str, object]:
        """The chosen recipe's keyword parameters: its own section."""
        section = getattr(self, self.recipe, None)
        return section.model_dump() if isinstance(section, BaseModel) else {}
