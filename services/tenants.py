"""A tenant's local calendar and thresholds."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from services.metrics import Thresholds
from services.models import Tenant


def tenant_today(tenant: Tenant, now: datetime) -> date:
    """The date at the school: "the future" is judged in the tenant's own time zone."""
    return now.astimezone(ZoneInfo(tenant.timezone)).date()


def tenant_thresholds(tenant: Tenant) -> Thresholds:
    return Thresholds(
        mahroom=tenant.mahroom_threshold,
        warning=tenant.warning_threshold,
        tasdiq=tenant.tasdiq_threshold,
    )
