"""PostgreSQL triggers that refuse UPDATE and DELETE on the audit event and seal tables.

Other backends (SQLite in development) rely on the model's own refusal. TRUNCATE is not a row
operation and is not covered: production must run the application under a database role that
does not own these tables and has no TRUNCATE privilege on them.
"""

from django.db import migrations

TABLES = {
    "audit_auditevent": "audit_event_append_only",
    "audit_auditseal": "audit_seal_append_only",
}

CREATE_FUNCTION = """
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit table % is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
"""

CREATE_TRIGGER = """
CREATE TRIGGER {trigger} BEFORE UPDATE OR DELETE ON {table}
FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
"""


def install(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    # No parameters: the function body has "%" placeholders of its own (RAISE).
    schema_editor.execute(CREATE_FUNCTION, params=None)
    for table, trigger in TABLES.items():
        schema_editor.execute(CREATE_TRIGGER.format(trigger=trigger, table=table))


def uninstall(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table, trigger in TABLES.items():
        schema_editor.execute(f"DROP TRIGGER IF EXISTS {trigger} ON {table};")
    schema_editor.execute("DROP FUNCTION IF EXISTS audit_refuse_change();")


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunPython(install, uninstall)]
