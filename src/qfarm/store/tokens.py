"""Client tokens: only a digest of each is kept, never the token itself."""

from __future__ import annotations

import time

from sqlalchemy import select, update

from qfarm.domain.errors import NotFound
from qfarm.store.base import StoreBase
from qfarm.store.records import TokenInfo
from qfarm.store.rows import Row, insert
from qfarm.store.tables import tokens


class Tokens(StoreBase):
    def add_token(self, name: str, digest: str, scope: str = "client") -> int:
        with self._tx() as conn:
            return insert(
                conn,
                tokens.insert().values(
                    name=name, digest=digest, created_at=time.time(), scope=scope
                ),
            )

    def tokens(self) -> list[TokenInfo]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(tokens).order_by(tokens.c.id)).all()
        return [_info(r) for r in rows]

    def has_active_tokens(self) -> bool:
        with self.engine.connect() as conn:
            found = conn.execute(
                select(tokens.c.id).where(tokens.c.revoked_at.is_(None)).limit(1)
            ).first()
        return found is not None

    def token_for(self, digest: str) -> TokenInfo | None:
        """The active token with this digest, if there is one."""
        with self.engine.connect() as conn:
            r = conn.execute(
                select(tokens).where(tokens.c.digest == digest, tokens.c.revoked_at.is_(None))
            ).first()
        return None if r is None else _info(r)

    def token_used(self, token_id: int, at: float) -> None:
        with self._tx() as conn:
            conn.execute(update(tokens).where(tokens.c.id == token_id).values(last_used_at=at))

    def revoke_token(self, token_id: int) -> TokenInfo:
        with self._tx() as conn:
            done = conn.execute(
                update(tokens)
                .where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
            if done.rowcount == 0:
                raise NotFound(f"no active token {token_id}")
        return next(t for t in self.tokens() if t.id == token_id)


def _info(row: Row) -> TokenInfo:
    return TokenInfo(
        row.id, row.name, row.created_at, row.last_used_at, row.revoked_at, row.scope or "client"
    )
