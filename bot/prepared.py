"""Core statements compiled once per dialect and run straight on the driver's cursor, inside `run_sync`.

SQLAlchemy's execution of a statement costs 30–50 µs (an execution context, result metadata, the async
wrapper) where the driver's cursor takes about 3 (bench/bench_rsvp.py; an RSVP runs half a dozen small
statements). The hot path of an RSVP (finding the event, seating, writing back) runs its statements here:
compiled by SQLAlchemy as usual, with each column type's bind and result processing applied as SQLAlchemy
would, but executed without the per-call machinery. Statements must be positional-parameter Core
statements without expanding IN lists (one statement text per dialect); run them in a sync function handed
to `AsyncConnection.run_sync`, where the cursor's calls are awaited for the async drivers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ReturnsRows

Processor = Callable[[Any], Any] | None


@dataclass(frozen=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # the bind parameters, in the order the cursor takes them
    defaults: dict[str, Any]  # the values of those the statement holds (literals)
    binds: tuple[Processor, ...]
    results: tuple[Processor, ...]  # one per result column


class Prepared:
    """One Core statement; `rows`, `run` and `run_many` execute it on a sync connection's cursor."""

    def __init__(self, statement: sa.ClauseElement) -> None:
        self.statement = statement
        self._compiled: dict[str, _Compiled] = {}

    def rows(self, connection: sa.Connection, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        compiled = self._for(connection.dialect)
        cursor = connection.connection.cursor()
        try:
            cursor.execute(compiled.sql, self._bound(compiled, params or {}))
            found = cursor.fetchall()
        finally:
            cursor.close()
        return [tuple(f(v) if f else v for f, v in zip(compiled.results, row, strict=True)) for row in found]

    def run(self, connection: sa.Connection, params: Mapping[str, Any] | None = None) -> int:
        """Execute; the number of rows it matched."""
        compiled = self._for(connection.dialect)
        cursor = connection.connection.cursor()
        try:
            cursor.execute(compiled.sql, self._bound(compiled, params or {}))
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def run_many(self, connection: sa.Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        compiled = self._for(connection.dialect)
        cursor = connection.connection.cursor()
        try:
            cursor.executemany(compiled.sql, [self._bound(compiled, row) for row in rows])
        finally:
            cursor.close()

    @staticmethod
    def _bound(compiled: _Compiled, params: Mapping[str, Any]) -> tuple[Any, ...]:
        values = (params[name] if name in params else compiled.defaults[name] for name in compiled.names)
        return tuple(f(v) if f else v for v, f in zip(values, compiled.binds, strict=True))

    def _for(self, dialect: sa.Dialect) -> _Compiled:
        if (compiled := self._compiled.get(dialect.name)) is None:
            compiled = self._compiled[dialect.name] = _compile(self.statement, dialect)
        return compiled


def _compile(statement: sa.ClauseElement, dialect: sa.Dialect) -> _Compiled:
    compiled = statement.compile(dialect=dialect)
    if not isinstance(compiled, SQLCompiler) or not dialect.positional or compiled.positiontup is None:
        raise ValueError(f"{dialect.name}: a prepared statement needs positional parameters")
    names = tuple(compiled.positiontup)
    defaults = {name: compiled.binds[name].effective_value for name in names if not compiled.binds[name].required}
    binds = tuple(compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect) for name in names)
    columns = statement.exported_columns if isinstance(statement, ReturnsRows) else ()  # a select's, or RETURNING
    results = tuple(column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns)
    return _Compiled(compiled.string, names, defaults, binds, results)
