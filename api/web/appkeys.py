"""Every web.AppKey the app stores things under."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from api.services import Services
    from api.settings import Settings
    from api.web.overload import LoopLag

SETTINGS_KEY: web.AppKey[Settings] = web.AppKey("settings")
SERVICES_KEY: web.AppKey[Services] = web.AppKey("services")
LOOP_LAG_KEY: web.AppKey[LoopLag] = web.AppKey("loop_lag")
# The same signal sampled every 10 ms: when to shed ordinary requests (overload.py).
ADMISSION_LAG_KEY: web.AppKey[LoopLag] = web.AppKey("admission_lag")
# Set once SIGTERM has come: /readyz answers 503 while requests are still served.
DRAINING_KEY: web.AppKey[asyncio.Event] = web.AppKey("draining")
