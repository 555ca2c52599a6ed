"""Farm-wide settings that the API changes while the controller runs (retention, default
notifications): a name and a JSON value each, read when they are used, so a change made
through the API holds at once and after a restart."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select

from qfarm.store.base import StoreBase
from qfarm.store.tables import settings


class Settings(StoreBase):
    def setting(self, name: str) -> Any | None:
        """The setting's value; None when it was never set (or was cleared)."""
        with self.engine.connect() as conn:
            return conn.execute(select(settings.c.value).where(settings.c.name == name)).scalar()

    def set_setting(self, name: str, value: Any | None) -> None:
        """Set (None: clear) a setting, in one transaction."""
        with self._tx() as conn:
            conn.execute(delete(settings).where(settings.c.name == name))
            if value is not None:
                conn.execute(settings.insert().values(name=name, value=value))
