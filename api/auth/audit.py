"""The audit trail: who did what security-relevant thing, from where, when."""

from __future__ import annotations

from tortoise.backends.base.client import BaseDBAsyncClient

from api.clock import Clock, to_datetime
from api.db.models import AuditEvent


class AuditLog:
    """Writes AuditEvent rows; callers pass their transaction so the event commits with them."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    async def record(
        self,
        kind: str,
        *,
        user_id: object = None,
        ip: str | None = None,
        detail: str | None = None,
        using_db: BaseDBAsyncClient | None = None,
    ) -> None:
        await AuditEvent.create(
            kind=kind,
            user_id=user_id,
            ip=ip,
            at=to_datetime(self._clock()),
            detail=detail[:500] if detail else None,
            using_db=using_db,
        )
