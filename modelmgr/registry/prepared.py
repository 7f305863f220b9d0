"""Querysets whose SQL is compiled once, then run again with new parameter values.

Django compiles a queryset's SQL on every evaluation. For the registry's hottest reads
(a request's API token, a version named by ``name@version``) compiling took about 0.5 ms
per query on the 2-core VM, several times what PostgreSQL spent running it: with three
such queries, resolving a name missed its 5 ms p95 (benchmarks/RESULTS.md, registry).

A ``PreparedQuery`` builds its queryset once per thread and database connection with
placeholder values, compiles it, and notes where each placeholder sits in the SQL's
parameters. Each ``run`` puts the real values there and evaluates a copy of the
queryset through Django's own iteration with that compiler, so the rows are converted
(datetimes, JSON, booleans) and the instances built (``select_related`` included) exactly
as the ORM builds them; only the compilation is skipped.

It relies on two things inside Django (pinned in pyproject.toml; tests/registry/
test_prepared.py compares every prepared query with the plain ORM on both databases):
``Query.get_compiler`` returns the compiler a queryset's iteration uses, and
``SQLCompiler.execute_sql`` gets its SQL from ``as_sql``. When a placeholder cannot be
found among the parameters (a lookup that transforms its value), the query is run
through the plain ORM instead, every time: never a wrong answer, only a slower one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.db import connections
from django.db.models import Model, QuerySet

log = logging.getLogger(__name__)


@dataclass
class _Compiled:
    connection: Any
    queryset: QuerySet
    compiler: Any
    sql: str
    params: tuple
    positions: dict[str, list[int]]


class PreparedQuery:
    """``build(**values)`` makes the queryset; ``placeholders`` give each value a
    stand-in that appears nowhere else in the query (an impossible string or number)."""

    def __init__(self, build: Callable[..., QuerySet], **placeholders: Any) -> None:
        self._build = build
        self._placeholders = placeholders
        self._local = threading.local()
        self._plain = False  # placeholders not found: always the plain ORM

    @property
    def names(self) -> list[str]:
        """The values ``run`` takes."""
        return list(self._placeholders)

    def run(self, **values: Any) -> list[Model]:
        if set(values) != set(self._placeholders):
            raise TypeError(
                f"values for {sorted(self._placeholders)} expected, got {sorted(values)}"
            )
        compiled = None if self._plain else self._compiled()
        if compiled is None:
            return list(self._build(**values))
        params = list(compiled.params)
        for name, indexes in compiled.positions.items():
            for index in indexes:
                params[index] = values[name]
        sql, bound = compiled.sql, tuple(params)
        compiled.compiler.as_sql = lambda *args, **kwargs: (sql, bound)
        queryset = compiled.queryset._chain()
        queryset.query.get_compiler = lambda *args, **kwargs: compiled.compiler
        return list(queryset)

    def _compiled(self) -> _Compiled | None:
        """This thread's compiled query, compiled now on first use (or on a new
        connection); None when the placeholders cannot be placed."""
        compiled: _Compiled | None = getattr(self._local, "compiled", None)
        queryset = compiled.queryset if compiled else self._build(**self._placeholders)
        alias = queryset.db
        connection = connections[alias]
        if compiled is not None and compiled.connection is connection:
            return compiled
        compiler = queryset.query.get_compiler(using=alias)
        sql, params = compiler.as_sql()
        positions = {
            name: [i for i, param in enumerate(params) if _same(param, stand_in)]
            for name, stand_in in self._placeholders.items()
        }
        inline = [name for name, stand_in in self._placeholders.items() if str(stand_in) in sql]
        if inline or not all(positions.values()):
            log.warning(
                "prepared query %s: placeholders %s not among the parameters; using the ORM",
                getattr(self._build, "__qualname__", self._build),
                inline or [name for name, found in positions.items() if not found],
            )
            self._plain = True
            return None
        compiled = _Compiled(connection, queryset, compiler, sql, tuple(params), positions)
        self._local.compiled = compiled
        return compiled


def _same(param: Any, stand_in: Any) -> bool:
    return type(param) is type(stand_in) and param == stand_in
