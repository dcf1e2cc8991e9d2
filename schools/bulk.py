"""Writing many new rows fast (the roster import, and the demo and city-scale data sets of
``seed_demo``, issue 9).

``values_write(model, columns, rows)`` inserts rows given as tuples and returns their primary keys;
``rows_write(model, objects)`` does the same for unsaved model instances and sets their keys, as
``bulk_create`` does. On PostgreSQL the keys are reserved from the table's sequence and the rows
streamed with ``COPY … FROM STDIN`` in CSV (psycopg2 ``copy_expert``): no SQL to build or parse per
row, a tenth of the time of multi-row INSERTs at city scale. Elsewhere (the embedded SQLite) it is
``bulk_create``. Rows are written as they are: no ``full_clean()``, no signals, like ``bulk_create``.
The context managers below make a bulk load of a whole data set cheaper still (``seed_demo``).
"""

import csv
import datetime
import functools
import io
import json
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar

from django.db import connection, models
from django.utils import timezone

BATCH_SIZE = 2000
COPY_ROWS = 20000  # rows per COPY of values_write: one key query and one COPY per this many
# What copy_expert reads from the buffer at a time (its default is 8 KB). Each read needs the GIL:
# a COPY in the background thread waited for the builder's thread to let go of it (the interpreter's
# 5 ms switch interval) once every 8 KB, and took three times as long as the same COPY alone.
COPY_READ = 64 * 1024 * 1024
KEY_BLOCK = 100000  # keys reserved at once while copies run in the background


def rows_write(model: type[models.Model], objects: Sequence[models.Model]) -> None:
    """Insert ``objects`` (unsaved instances of ``model``, without primary keys) and set their
    primary keys, as ``bulk_create`` does: on PostgreSQL their field values through
    ``values_write``, elsewhere ``bulk_create``. Raises ``ValueError`` for an instance that
    already has a primary key."""
    if not objects:
        return
    if connection.vendor != "postgresql":
        model.objects.bulk_create(objects, batch_size=BATCH_SIZE)
        return
    meta = model._meta
    if any(getattr(obj, meta.pk.attname) is not None for obj in objects):
        raise ValueError("rows_write() writes new rows: leave the primary keys to it")
    for obj in objects:  # a foreign key given as an instance saved since: take its id now
        obj._prepare_related_fields_for_save(operation_name="rows_write")
    columns = [field.attname for field in meta.concrete_fields if field is not meta.pk and not _automatic(field)]
    keys = values_write(model, columns, [tuple([getattr(obj, name) for name in columns]) for obj in objects])
    for obj, key in zip(objects, keys, strict=True):
        setattr(obj, meta.pk.attname, key)
        obj._state.adding = False
        obj._state.db = connection.alias


def _automatic(field: models.Field) -> bool:
    """A field a save stamps with the time (``auto_now``, ``auto_now_add``)."""
    return getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False)


def values_write(model: type[models.Model], columns: Sequence[str], rows: Sequence[Sequence]) -> list[int]:
    """Insert ``rows``, each a tuple of the values of ``columns`` (attribute names such as
    ``school_id``), and return their new primary keys in order: ``rows_write`` without a model
    instance per row (building instances was half the Python time of ``seed_demo``).

    A field not in ``columns`` takes its default: a constant once, a callable (``uuid.uuid4``,
    ``timezone.now``) once per row; ``auto_now``/``auto_now_add`` fields the time of the call. The
    primary key must not be in ``columns``. Values are written as given (no ``full_clean()``, no
    signals): ints, text, bools, dates, aware datetimes, UUIDs, and lists or dicts for JSON fields;
    ``None`` is NULL, except in a text column (the project has no nullable text), where it is ``""``.
    On PostgreSQL the rows go through the C ``csv`` writer into ``COPY … (FORMAT csv)``, a tenth of
    the per-value Python work of the text format; elsewhere through ``bulk_create``.
    """
    if not rows:
        return []
    meta = model._meta
    pk = meta.pk
    if pk.attname in columns:
        raise ValueError("values_write() assigns the primary key itself; leave it out of columns")
    if connection.vendor != "postgresql":
        objects = [model(**dict(zip(columns, row, strict=True))) for row in rows]
        model.objects.bulk_create(objects, batch_size=BATCH_SIZE)
        return [obj.pk for obj in objects]
    by_name = {field.attname: field for field in meta.concrete_fields if field is not pk}
    unknown = set(columns) - set(by_name)
    if unknown:
        raise ValueError(f"values_write(): {model.__name__} has no field {sorted(unknown)}")
    given = [by_name[name] for name in columns]
    # Columns converted in Python before the csv writer: JSON dumped; aware datetimes through a memo
    # (a data set repeats its times, and str() of an aware datetime was half a visit row's cost).
    converted = [
        (i, _json_text if isinstance(field, models.JSONField) else _timestamp_text)
        for i, field in enumerate(given)
        if isinstance(field, models.JSONField | models.DateTimeField)
    ]
    rest = [field for name, field in by_name.items() if name not in columns]
    now = timezone.now()
    automatic = [f for f in rest if _automatic(f)]
    per_row = [f for f in rest if f not in automatic and f.has_default() and callable(f.default)]
    constant_fields = [f for f in rest if f not in automatic and f not in per_row]
    constants = tuple(_csv_value(f, now if f in automatic else f.get_default()) for f in [*automatic, *constant_fields])
    defaults = [f.default for f in per_row]
    order = [pk, *given, *per_row, *automatic, *constant_fields]
    names = ", ".join(connection.ops.quote_name(field.column) for field in order)
    not_null = ", ".join(connection.ops.quote_name(f.column) for f in order if not f.null)
    table = connection.ops.quote_name(meta.db_table)
    sql = f"COPY {table} ({names}) FROM STDIN WITH (FORMAT csv, FORCE_NOT_NULL ({not_null}))"
    background = _background.get()
    keys: list[int] = []
    for start in range(0, len(rows), COPY_ROWS):
        batch = rows[start : start + COPY_ROWS]
        batch_keys = _keys_reserved(meta.db_table, pk.column, len(batch), background)
        if converted:
            batch = [_converted(row, converted) for row in batch]
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(
            (key, *row, *[default() for default in defaults], *constants)
            for key, row in zip(batch_keys, batch, strict=True)
        )
        buffer.seek(0)
        if background is not None:
            background.submit(sql, buffer)
        else:
            with connection.cursor() as cursor:
                cursor.cursor.copy_expert(sql, buffer, size=COPY_READ)
        keys.extend(batch_keys)
    return keys


def _keys_reserved(table: str, column: str, count: int, background: "_BackgroundCopies | None") -> list[int]:
    """``count`` new keys from the table's sequence: one query for them, or, while copies run in
    the background, from a block of at least ``KEY_BLOCK`` reserved at once (so that writing rows
    seldom has to wait for the copies before it to finish; unused keys leave a gap, as a rolled-back
    insert does)."""
    if background is None:
        return _nextval(table, column, count)
    block = background.keys.setdefault(table, [])
    if len(block) < count:
        block.extend(_nextval(table, column, max(count - len(block), KEY_BLOCK)))
    taken = block[:count]
    del block[:count]
    return taken


def _nextval(table: str, column: str, count: int) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(s) FROM pg_get_serial_sequence(%s, %s) AS s, generate_series(1, %s)",
            [table, column, count],
        )
        return [key for (key,) in cursor.fetchall()]


class _BackgroundCopies:
    """The COPYs of ``values_write`` run one after another in a thread while the caller builds the
    next rows: the server's work (parsing, index entries) overlaps the Python work. Any other query
    on the connection first waits for the copies queued before it (a Django execute wrapper), so
    the statements reach the server in the order the code wrote them."""

    def __init__(self) -> None:
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="copy")
        self.pending: list[Future] = []
        self.keys: dict[str, list[int]] = {}
        self.raw = connection.connection  # the psycopg2 connection of this thread's Django connection

    def submit(self, sql: str, buffer: io.StringIO) -> None:
        self.pending = [future for future in self.pending if not future.done() or future.exception()]
        self.pending.append(self.executor.submit(self._copy, sql, buffer))

    def _copy(self, sql: str, buffer: io.StringIO) -> None:
        with self.raw.cursor() as cursor:
            cursor.copy_expert(sql, buffer, size=COPY_READ)

    def wait(self) -> None:
        pending, self.pending = self.pending, []
        for future in pending:
            with connection.wrap_database_errors:  # psycopg2's errors as Django's (IntegrityError …)
                future.result()  # the first COPY that failed raises here

    def __call__(self, execute, sql, params, many, context):
        self.wait()
        return execute(sql, params, many, context)


_background: ContextVar[_BackgroundCopies | None] = ContextVar("bulk_background_copies", default=None)


@contextmanager
def copies_in_background() -> Iterator[None]:
    """Run ``values_write``'s COPYs in a background thread for the block (PostgreSQL; elsewhere
    nothing changes). On leaving, every queued COPY has finished; the first that failed raises its
    error there, or at the next query inside the block. Must run inside ``transaction.atomic()``:
    the copies belong to the caller's transaction."""
    if connection.vendor != "postgresql":
        yield
        return
    if not connection.in_atomic_block:
        raise RuntimeError("copies_in_background() must run inside transaction.atomic()")
    background = _BackgroundCopies()
    token = _background.set(background)
    try:
        with connection.execute_wrapper(background):
            yield
    finally:
        _background.reset(token)
        try:
            background.wait()
        finally:
            background.executor.shutdown(wait=True)


def _converted(row: Sequence, converters: list[tuple[int, Callable[[object], object]]]) -> list:
    row = list(row)
    for position, convert in converters:
        row[position] = convert(row[position])
    return row


def _json_text(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


@functools.lru_cache(maxsize=1 << 17)
def _timestamp_text(value: datetime.datetime | None) -> str | None:
    return None if value is None else str(value)


def _csv_value(field: models.Field, value: object) -> object:
    """A default as ``values_write`` sends it: JSON dumped, the rest as the csv writer prints it."""
    return json.dumps(value, ensure_ascii=False) if isinstance(field, models.JSONField) else value


def uuid4_text(rng: random.Random) -> str:
    """A version-4 UUID (RFC 9562 §5.4) drawn from ``rng``, as text: what
    ``str(uuid.UUID(int=rng.getrandbits(128), version=4))`` gives, in a fifth of the time (a
    city-scale build draws millions). For seeded data sets, where the same seed must give the same
    ids; ``uuid.uuid4()`` stays the default everywhere else."""
    bits = (rng.getrandbits(128) & ~(0xF000 << 64) & ~(0xC000 << 48)) | (0x4000 << 64) | (0x8000 << 48)
    text = f"{bits:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def tables_analyze(model_classes: Iterable[type[models.Model]] | None = None) -> None:
    """``ANALYZE`` the tables of ``model_classes`` (default: the whole database) on PostgreSQL after
    a bulk write, so that the planner knows the new row counts at once (autovacuum may be off, and
    runs late when on); nothing elsewhere."""
    if connection.vendor != "postgresql":
        return
    tables = sorted({connection.ops.quote_name(model._meta.db_table) for model in model_classes or ()})
    if model_classes is not None and not tables:
        return
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {', '.join(tables)}" if tables else "ANALYZE")


@contextmanager
def foreign_keys_checked_at_end(model_classes: Iterable[type[models.Model]]) -> Iterator[None]:
    """Check the foreign keys of ``model_classes``' tables once, after a bulk load, instead of row by row.

    Django's foreign keys on PostgreSQL are ``DEFERRABLE INITIALLY DEFERRED``: each inserted row
    queues a check that runs at COMMIT (57 s of a 150-school ``seed_demo``, ten times that for a
    city). Inside the caller's transaction this drops the tables' foreign-key constraints, yields,
    and adds them back with the same names and definitions; adding a constraint validates every row
    in one join per constraint (PostgreSQL manual, "Populating a Database", 14.4.4). A row that
    breaks a key raises ``IntegrityError`` when the constraints are added, and the transaction rolls
    back. Pending checks of earlier writes run first (``SET CONSTRAINTS ALL IMMEDIATE``). Elsewhere
    (the embedded SQLite) it does nothing. Must run inside ``transaction.atomic()``.
    """
    tables = _tables_to_load("foreign_keys_checked_at_end", model_classes)
    if tables is None:
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE contype = 'f' AND conrelid = ANY(%s::regclass[]) ORDER BY conrelid::regclass::text, conname",
            [tables],
        )
        constraints = [(table, connection.ops.quote_name(name), definition) for table, name, definition in cursor]
    with _dropped_then_restored(
        [f"ALTER TABLE {table} DROP CONSTRAINT {name}" for table, name, _ in constraints],
        [f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}" for table, name, definition in constraints],
    ):
        yield


@contextmanager
def indexes_built_at_end(model_classes: Iterable[type[models.Model]]) -> Iterator[None]:
    """Build the secondary indexes of ``model_classes``' tables once, after a bulk load, instead of
    updating each of them row by row (PostgreSQL manual, "Populating a Database", 14.4.3).

    Inside the caller's transaction this drops the indexes that back no constraint (primary keys
    and unique constraints stay, and keep refusing duplicates as the rows arrive), yields, and
    creates them again from their own definitions (``pg_get_indexdef``) with more sort memory. The
    tables are locked for the transaction (``DROP INDEX``), and a query inside the block that needs
    one of the indexes scans the table: wrap only the writing, not reading, of a table. Elsewhere
    (the embedded SQLite) it does nothing. Must run inside ``transaction.atomic()``.
    """
    tables = _tables_to_load("indexes_built_at_end", model_classes)
    if tables is None:
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index"
            " WHERE indrelid = ANY(%s::regclass[]) AND NOT indisprimary AND NOT indisunique"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conindid = indexrelid)"
            " ORDER BY 1",
            [tables],
        )
        indexes = cursor.fetchall()
    with _dropped_then_restored(
        [f"DROP INDEX {name}" for name, _ in indexes],
        ["SET LOCAL maintenance_work_mem = '256MB'", *(definition for _, definition in indexes)],
    ):
        yield


def _tables_to_load(caller: str, model_classes: Iterable[type[models.Model]]) -> list[str] | None:
    """The tables of a bulk load on PostgreSQL (None elsewhere: the embedded SQLite loads as it is).
    Raises ``RuntimeError`` outside ``transaction.atomic()``: what is dropped must come back with
    the load, or not at all."""
    if connection.vendor != "postgresql":
        return None
    if not connection.in_atomic_block:
        raise RuntimeError(f"{caller}() must run inside transaction.atomic()")
    return sorted({model._meta.db_table for model in model_classes})


@contextmanager
def _dropped_then_restored(drops: list[str], restores: list[str]) -> Iterator[None]:
    """Run ``drops``, yield, run ``restores``, in the caller's transaction. A table with
    foreign-key checks still queued can't be altered: they run first (``SET CONSTRAINTS ALL
    IMMEDIATE``), and the constraints are deferred again afterwards, as Django declares them."""
    _run_with_checks_done(drops)
    yield
    _run_with_checks_done(restores)


def _run_with_checks_done(statements: list[str]) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for sql in statements:
            cursor.execute(sql)
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
