"""What the 高德 client reads, owned here so that services/ never imports the bot: where the API is,
how long to wait and how often to retry. The bot's `amap:` config section extends it (bot/config)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class AmapSettings(BaseModel):
    """Unknown keys are errors, and loaded settings never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_url: str = "https://restapi.amap.com"
    timeout_s: float = Field(default=5.0, gt=0)
    retries: int = Field(default=2, ge=0, le=5)
