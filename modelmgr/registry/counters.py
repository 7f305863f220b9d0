"""A model's ``version_count`` and ``latest_version``, kept by database triggers.

Naming a model used to count its versions and look for the newest available one on
every request: two subqueries that grow with the number of versions (130-160 ms at
100k versions). The two columns on ``RegisteredModel`` are now written by triggers on
the version table, in the same transaction as the change that moves them, whoever
makes it: the services, the admin, a bulk ``QuerySet.update``, a cascade, raw SQL. A
rolled-back transaction rolls its counts back with it.

1. Insert: count + 1; an available version recomputes the newest available.
2. Delete: count - 1; an available version recomputes the newest available.
3. Update of status, created_at, version or model (only when one really changes):
   counts move between models, and the newest available is recomputed.

"Newest available" is one seek on the (model, status, created_at, id) index: ties on
created_at are broken by the higher id, as everywhere else.

On PostgreSQL the recompute first locks the model's row and then reads with a fresh
snapshot (each statement of a volatile PL/pgSQL function takes one), so two
transactions adding versions to one model at once cannot leave an older version as the
newest. On SQLite writers are serialised anyway.

SQLite drops a table's triggers when Django rebuilds the table (an AlterField in a later
migration): ``triggers_ensure`` runs after every ``migrate`` (post_migrate) and puts
them back, recounting once, when they are missing.
"""

from __future__ import annotations

from django.db import connections

VERSIONS = "modelmgr_modelversion"
MODELS = "modelmgr_registeredmodel"
AVAILABLE = "'available'"
TRIGGERS = ("modelmgr_version_summary", "modelmgr_version_summary_update")


def _newest_available(model_id: str) -> str:
    # "" when none is available (the column is NOT NULL, like every CharField here).
    return (
        f"COALESCE((SELECT v.version FROM {VERSIONS} v WHERE v.model_id = {model_id} "
        f"AND v.status = {AVAILABLE} ORDER BY v.created_at DESC, v.id DESC LIMIT 1), '')"
    )


_CHANGED = (
    "OLD.status IS NOT NEW.status OR OLD.created_at IS NOT NEW.created_at "
    "OR OLD.model_id IS NOT NEW.model_id OR OLD.version IS NOT NEW.version"
)

SQLITE = [
    f"""CREATE TRIGGER modelmgr_version_summary AFTER INSERT ON {VERSIONS}
    BEGIN
      UPDATE {MODELS} SET version_count = version_count + 1 WHERE id = NEW.model_id;
      UPDATE {MODELS} SET latest_version = {_newest_available("NEW.model_id")}
        WHERE id = NEW.model_id AND NEW.status = {AVAILABLE};
    END""",
    f"""CREATE TRIGGER modelmgr_version_summary_delete AFTER DELETE ON {VERSIONS}
    BEGIN
      UPDATE {MODELS} SET version_count = version_count - 1 WHERE id = OLD.model_id;
      UPDATE {MODELS} SET latest_version = {_newest_available("OLD.model_id")}
        WHERE id = OLD.model_id AND OLD.status = {AVAILABLE};
    END""",
    f"""CREATE TRIGGER modelmgr_version_summary_update
    AFTER UPDATE OF model_id, status, created_at, version ON {VERSIONS}
    WHEN {_CHANGED}
    BEGIN
      UPDATE {MODELS} SET version_count = version_count - 1
        WHERE id = OLD.model_id AND NEW.model_id <> OLD.model_id;
      UPDATE {MODELS} SET version_count = version_count + 1
        WHERE id = NEW.model_id AND NEW.model_id <> OLD.model_id;
      UPDATE {MODELS} SET latest_version = {_newest_available("OLD.model_id")}
        WHERE id = OLD.model_id AND (OLD.status = {AVAILABLE} OR NEW.status = {AVAILABLE});
      UPDATE {MODELS} SET latest_version = {_newest_available("NEW.model_id")}
        WHERE id = NEW.model_id AND NEW.model_id <> OLD.model_id
          AND (OLD.status = {AVAILABLE} OR NEW.status = {AVAILABLE});
    END""",
]
SQLITE_NAMES = (
    "modelmgr_version_summary",
    "modelmgr_version_summary_delete",
    "modelmgr_version_summary_update",
)

POSTGRES = [
    f"""CREATE OR REPLACE FUNCTION modelmgr_refresh_latest(mid bigint) RETURNS void
    LANGUAGE plpgsql VOLATILE AS $$
    BEGIN
      PERFORM 1 FROM {MODELS} WHERE id = mid FOR UPDATE;
      UPDATE {MODELS} SET latest_version = {_newest_available("mid")} WHERE id = mid;
    END $$""",
    f"""CREATE OR REPLACE FUNCTION modelmgr_version_summary() RETURNS trigger
    LANGUAGE plpgsql VOLATILE AS $$
    BEGIN
      IF TG_OP = 'INSERT' THEN
        UPDATE {MODELS} SET version_count = version_count + 1 WHERE id = NEW.model_id;
        IF NEW.status = {AVAILABLE} THEN PERFORM modelmgr_refresh_latest(NEW.model_id);
        END IF;
      ELSIF TG_OP = 'DELETE' THEN
        UPDATE {MODELS} SET version_count = version_count - 1 WHERE id = OLD.model_id;
        IF OLD.status = {AVAILABLE} THEN PERFORM modelmgr_refresh_latest(OLD.model_id);
        END IF;
      ELSE
        IF NEW.model_id <> OLD.model_id THEN
          UPDATE {MODELS} SET version_count = version_count - 1 WHERE id = OLD.model_id;
          UPDATE {MODELS} SET version_count = version_count + 1 WHERE id = NEW.model_id;
        END IF;
        IF OLD.status = {AVAILABLE} OR NEW.status = {AVAILABLE} THEN
          PERFORM modelmgr_refresh_latest(OLD.model_id);
          IF NEW.model_id <> OLD.model_id THEN
            PERFORM modelmgr_refresh_latest(NEW.model_id);
          END IF;
        END IF;
      END IF;
      RETURN NULL;
    END $$""",
    f"DROP TRIGGER IF EXISTS modelmgr_version_summary ON {VERSIONS}",
    f"DROP TRIGGER IF EXISTS modelmgr_version_summary_update ON {VERSIONS}",
    f"""CREATE TRIGGER modelmgr_version_summary AFTER INSERT OR DELETE ON {VERSIONS}
    FOR EACH ROW EXECUTE FUNCTION modelmgr_version_summary()""",
    f"""CREATE TRIGGER modelmgr_version_summary_update
    AFTER UPDATE OF model_id, status, created_at, version ON {VERSIONS}
    FOR EACH ROW WHEN ({_CHANGED.replace(" IS NOT ", " IS DISTINCT FROM ")})
    EXECUTE FUNCTION modelmgr_version_summary()""",
]
POSTGRES_NAMES = TRIGGERS

BACKFILL = (
    f"UPDATE {MODELS} SET version_count = "
    f"(SELECT COUNT(*) FROM {VERSIONS} c WHERE c.model_id = {MODELS}.id), "
    f"latest_version = {_newest_available(f'{MODELS}.id')}"
)


def _names(vendor: str) -> tuple[str, ...]:
    return SQLITE_NAMES if vendor == "sqlite" else POSTGRES_NAMES


def triggers_installed(connection) -> bool:
    names = _names(connection.vendor)
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND name IN "
                f"({', '.join(['%s'] * len(names))})",
                list(names),
            )
        else:
            cursor.execute(
                "SELECT COUNT(*) FROM pg_trigger WHERE NOT tgisinternal AND tgname IN "
                f"({', '.join(['%s'] * len(names))})",
                list(names),
            )
        return cursor.fetchone()[0] == len(names)


def triggers_install(connection) -> None:
    """(Re)create the triggers and recount every model, in one transaction."""
    if connection.vendor not in ("sqlite", "postgresql"):
        raise NotImplementedError(f"no version-count triggers for {connection.vendor}")
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            for name in SQLITE_NAMES:
                cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
            statements = SQLITE
        else:
            statements = POSTGRES
        for statement in statements:
            cursor.execute(statement)
        cursor.execute(BACKFILL)


def triggers_drop(connection) -> None:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            for name in SQLITE_NAMES:
                cursor.execute(f"DROP TRIGGER IF EXISTS {name}")
        else:
            for name in POSTGRES_NAMES:
                cursor.execute(f"DROP TRIGGER IF EXISTS {name} ON {VERSIONS}")
            cursor.execute("DROP FUNCTION IF EXISTS modelmgr_version_summary()")
            cursor.execute("DROP FUNCTION IF EXISTS modelmgr_refresh_latest(bigint)")


def triggers_ensure(using: str = "default", **_kwargs) -> bool:
    """post_migrate: put the triggers back (and recount) when a migration dropped them.

    Returns whether anything was installed. Does nothing before the columns exist (a
    migrate to an earlier state)."""
    from django.db import transaction

    connection = connections[using]
    if connection.vendor not in ("sqlite", "postgresql"):
        return False
    with connection.cursor() as cursor:
        tables = set(connection.introspection.table_names(cursor))
        if VERSIONS not in tables or MODELS not in tables:
            return False
        columns = {c.name for c in connection.introspection.get_table_description(cursor, MODELS)}
    if "version_count" not in columns or triggers_installed(connection):
        return False
    with transaction.atomic(using=using):
        triggers_install(connection)
    return True
