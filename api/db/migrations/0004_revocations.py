from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index

# Every session change that refuses tokens appends one row, in the transaction that makes it:
# no code path can forget it. 4611686018427387904 is api.auth.revocation.ENDED (2**62).
WHEN = (
    "(OLD.ended_at IS NULL AND NEW.ended_at IS NOT NULL)"
    " OR NEW.access_not_before > OLD.access_not_before"
)
NOT_BEFORE = (
    "CASE WHEN NEW.ended_at IS NOT NULL THEN 4611686018427387904 ELSE NEW.access_not_before END"
)
SQLITE = [
    f"""CREATE TRIGGER sessions_revocation_feed AFTER UPDATE OF ended_at, access_not_before
    ON sessions FOR EACH ROW WHEN {WHEN}
    BEGIN INSERT INTO revocations (sid, not_before) VALUES (NEW.id, {NOT_BEFORE}); END""",
]
POSTGRES = [
    f"""CREATE OR REPLACE FUNCTION sessions_revocation_feed() RETURNS trigger
    LANGUAGE plpgsql AS $$ BEGIN
        INSERT INTO revocations (sid, not_before, xact_id)
        VALUES (NEW.id, {NOT_BEFORE}, pg_current_xact_id()::text::bigint);
        RETURN NULL;
    END $$""",
    f"""CREATE TRIGGER sessions_revocation_feed AFTER UPDATE OF ended_at, access_not_before
    ON sessions FOR EACH ROW WHEN ({WHEN}) EXECUTE FUNCTION sessions_revocation_feed()""",
]


async def create_trigger(apps, schema_editor):
    # RunSQL would split the trigger body on ";" on SQLite: one statement each, by hand.
    client = schema_editor.client
    for sql in SQLITE if client.capabilities.dialect == "sqlite" else POSTGRES:
        await client.execute_query(sql)


async def drop_trigger(apps, schema_editor):
    client = schema_editor.client
    if client.capabilities.dialect == "sqlite":
        await client.execute_query("DROP TRIGGER IF EXISTS sessions_revocation_feed")
    else:
        await client.execute_query("DROP TRIGGER IF EXISTS sessions_revocation_feed ON sessions")
        await client.execute_query("DROP FUNCTION IF EXISTS sessions_revocation_feed()")

class Migration(migrations.Migration):
    dependencies = [('models', '0003_action_tokens')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Revocation',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('sid', fields.UUIDField()),
                ('not_before', fields.BigIntField()),
                ('xact_id', fields.BigIntField(null=True)),
            ],
            options={'table': 'revocations', 'app': 'models', 'indexes': [Index(fields=['xact_id'])], 'pk_attr': 'id', 'table_description': 'The revocation feed in commit order, written by a trigger on sessions (api.auth.revocation).'},
            bases=['Model'],
        ),
        ops.RunPython(create_trigger, drop_trigger),
    ]
