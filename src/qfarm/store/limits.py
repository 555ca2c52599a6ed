"""Farm-wide limits: named counts that jobs hold one of per running segment (licenses)."""

from __future__ import annotations

from sqlalchemy import delete, select

from qfarm.domain.errors import NotFound
from qfarm.store.base import StoreBase
from qfarm.store.tables import limits


class Limits(StoreBase):
    def limits(self) -> dict[str, int]:
        """Every limit, name -> count."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(limits.c.name, limits.c.count).order_by(limits.c.name))
            return {str(name): int(count) for name, count in rows}

    def set_limit(self, name: str, count: int) -> None:
        with self._tx() as conn:
            found = conn.execute(select(limits.c.name).where(limits.c.name == name)).first()
            if found is None:
                conn.execute(limits.insert().values(name=name, count=count))
            else:
                conn.execute(limits.update().where(limits.c.name == name).values(count=count))

    def remove_limit(self, name: str) -> None:
        """Raises NotFound for a limit that is not set."""
        with self._tx() as conn:
            if conn.execute(delete(limits).where(limits.c.name == name)).rowcount == 0:
                raise NotFound(f"no limit {name!r} (qfarm limit list shows them)")
