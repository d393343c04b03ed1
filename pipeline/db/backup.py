"""Back up what a destructive undo removes, to S3, before it runs; and put it back.

Layout under the backup URI (s3://bucket/prefix/backups/<run-id>/):

    <table>.jsonl.gz            a table target: every column of every row
    <table>.<column>.jsonl.gz   a column target: the primary key columns and that column
    manifest.json               written last: targets, columns, row counts, sha256 of each
                                object, the table's CREATE TABLE, run id, time

Rows are JSON arrays, one per line, read with a server-side cursor and gzip-compressed
into a spooled temp file (memory stays bounded), then uploaded. Values are encoded
losslessly: bytes, decimals, dates and times carry a type tag.
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import json
import tempfile
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any

from pipeline.errors import BlockedError, ConfigError, NotFoundError
from pipeline.risk import Target

FORMAT = "dbroll.backup/v1"
CHUNK = 1000


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def encode(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return {"f": repr(value)}
    if isinstance(value, bytes | bytearray):
        return {"b": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, Decimal):
        return {"d": str(value)}
    if isinstance(value, dt.datetime):
        return {"dt": value.isoformat()}
    if isinstance(value, dt.date):
        return {"date": value.isoformat()}
    if isinstance(value, dt.timedelta):
        return {"td": value.total_seconds()}
    if isinstance(value, set | frozenset):  # SET columns with a set-returning converter
        return ",".join(sorted(value))
    return {"s": str(value)}


def decode(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    ((tag, v),) = value.items()
    return {
        "f": float,
        "b": base64.b64decode,
        "d": Decimal,
        "dt": dt.datetime.fromisoformat,
        "date": dt.date.fromisoformat,
        "td": lambda s: dt.timedelta(seconds=s),
        "s": str,
    }[tag](v)


def _primary_key(cur: Any, table: str) -> list[str]:
    cur.execute(
        "SELECT COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = "
        "DATABASE() AND TABLE_NAME = %s AND CONSTRAINT_NAME = 'PRIMARY' ORDER BY ORDINAL_POSITION",
        (table,),
    )
    return [r[0] for r in cur.fetchall()]


def _columns(cur: Any, table: str) -> list[str]:
    cur.execute(
        "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_NAME = %s ORDER BY ORDINAL_POSITION",
        (table,),
    )
    return [r[0] for r in cur.fetchall()]


def _object_name(t: Target, whole: bool) -> str:
    base = t.table if whole or not t.column else f"{t.table}.{t.column}"
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in base) + ".jsonl.gz"


def backup(
    connect: Callable[[], Any],
    targets: Iterable[Target],
    s3: Any,
    uri: str,
    *,
    run_id: str,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Dump every target that exists to `uri`/backups/<run_id>/; returns the manifest."""
    import pymysql.cursors

    from pipeline.aws.store import parse_s3_uri

    bucket, prefix = parse_s3_uri(uri.rstrip("/") + "/x")
    prefix = prefix[:-1].rstrip("/")
    safe_run = "".join(c if c.isalnum() or c in "-_." else "_" for c in run_id)
    base = f"{prefix}/backups/{safe_run}".lstrip("/")
    entries = []
    conn = connect()
    try:
        cur = conn.cursor()
        for t in targets:
            columns = _columns(cur, t.table)
            if not columns or (t.column and t.column not in columns):
                continue  # nothing there to lose
            pk = _primary_key(cur, t.table)
            whole = t.kind == "table" or not pk
            note = None
            if not whole:
                cols = [*pk, t.column]
            else:
                cols = columns
                if t.kind == "column":
                    note = f"{t.table} has no primary key: the whole table is kept"
            cur.execute(f"SHOW CREATE TABLE {_q(t.table)}")
            create = cur.fetchone()[1]
            name = _object_name(t, whole)
            digest = hashlib.sha256()
            rows = 0
            with tempfile.SpooledTemporaryFile(max_size=8 << 20) as raw:
                with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
                    scur = conn.cursor(pymysql.cursors.SSCursor)
                    scur.execute(
                        f"SELECT {', '.join(_q(c) for c in cols)} FROM {_q(t.table)}"
                        + (f" ORDER BY {', '.join(_q(c) for c in pk)}" if pk else "")
                    )
                    while batch := scur.fetchmany(CHUNK):
                        for row in batch:
                            gz.write(
                                (
                                    json.dumps([encode(v) for v in row], ensure_ascii=False) + "\n"
                                ).encode()
                            )
                        rows += len(batch)
                        if progress is not None and rows % (CHUNK * 50) == 0:
                            progress(f"backup {t.what}: {rows} rows")
                    scur.close()
                raw.seek(0)
                while chunk := raw.read(1 << 20):
                    digest.update(chunk)
                raw.seek(0)
                s3.upload_fileobj(raw, bucket, f"{base}/{name}")
            entries.append(
                {
                    "object": name,
                    "table": t.table,
                    "column": None if whole else t.column,
                    "target": t.to_dict(),
                    "columns": cols,
                    "primary_key": pk,
                    "rows": rows,
                    "sha256": digest.hexdigest(),
                    "create_table": create,
                    "note": note,
                }
            )
            if progress is not None:
                progress(f"backed up {t.what}: {rows} row(s) -> s3://{bucket}/{base}/{name}")
    finally:
        conn.close()
    manifest = {
        "format": FORMAT,
        "run_id": run_id,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "uri": f"s3://{bucket}/{base}/",
        "entries": entries,
        "rows": sum(e["rows"] for e in entries),
    }
    s3.put_object(
        Bucket=bucket,
        Key=f"{base}/manifest.json",
        Body=json.dumps(manifest, indent=2, sort_keys=True).encode(),
    )
    return manifest


def _split(uri: str) -> tuple[str, str]:
    from pipeline.aws.store import parse_s3_uri

    bucket, key = parse_s3_uri(uri.rstrip("/") + "/x")
    return bucket, key[:-1].rstrip("/")


def read_manifest(s3: Any, uri: str) -> dict:
    from botocore.exceptions import ClientError

    bucket, base = _split(uri)
    try:
        body = s3.get_object(Bucket=bucket, Key=f"{base}/manifest.json")["Body"].read()
    except ClientError:
        raise NotFoundError(
            f"no backup at {uri} (no manifest.json)",
            hint="`dbroll backup list s3://bucket/prefix` shows the backups",
        ) from None
    doc = json.loads(body)
    if doc.get("format") != FORMAT:
        raise ConfigError(f"{uri}manifest.json is not a dbroll backup manifest")
    return doc


def list_backups(s3: Any, uri: str) -> list[dict]:
    """The backups under s3://bucket/prefix (their manifests), newest first."""
    bucket, prefix = _split(uri)
    pages = s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{prefix}/backups/".lstrip("/")
    )
    out = []
    for page in pages:
        for o in page.get("Contents", []):
            if o["Key"].endswith("/manifest.json"):
                out.append(json.loads(s3.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()))
    return sorted(out, key=lambda m: m.get("created_at", ""), reverse=True)


def _rows(s3: Any, bucket: str, key: str, sha256: str) -> Iterator[list[Any]]:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    if hashlib.sha256(body).hexdigest() != sha256:
        raise BlockedError(
            f"s3://{bucket}/{key} does not match its sha256 in the backup manifest; "
            "nothing was restored from it",
            hint="the object was changed or damaged after the backup",
        )
    for line in gzip.decompress(body).decode().splitlines():
        yield [decode(v) for v in json.loads(line)]


def restore(
    connect: Callable[[], Any],
    s3: Any,
    uri: str,
    *,
    tables: Iterable[str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[dict]:
    """Put the data back: a table target into its table (re-created from the stored
    CREATE TABLE when it is missing; it must otherwise be empty); a column target by
    primary key into the column (which must exist again, after a forward migration)."""
    doc = read_manifest(s3, uri)
    bucket, base = _split(uri)
    wanted = set(tables) if tables else None
    done = []
    conn = connect()
    try:
        cur = conn.cursor()
        cur.execute("SET SESSION foreign_key_checks = 0")
        for e in doc["entries"]:
            if wanted is not None and e["table"] not in wanted:
                continue
            table, column, cols = e["table"], e["column"], e["columns"]
            present = _columns(cur, table)
            rows = list(_rows(s3, bucket, f"{base}/{e['object']}", e["sha256"]))
            if column is None:
                if not present:
                    cur.execute(e["create_table"])
                else:
                    cur.execute(f"SELECT COUNT(*) FROM {_q(table)}")
                    if cur.fetchone()[0]:
                        raise BlockedError(
                            f"table {table} exists and has rows: restoring {e['object']} "
                            "would mix old and new rows; nothing was restored into it",
                            hint=f"restore into an empty {table}, or pick the rows by hand "
                            f"from s3://{bucket}/{base}/{e['object']}",
                        )
                missing = [c for c in cols if c not in _columns(cur, table)]
                if missing:
                    raise BlockedError(
                        f"table {table} lacks column(s) {', '.join(missing)} of the backup"
                    )
                sql = (
                    f"INSERT INTO {_q(table)} ({', '.join(_q(c) for c in cols)}) "
                    f"VALUES ({', '.join(['%s'] * len(cols))})"
                )
                for i in range(0, len(rows), CHUNK):
                    cur.executemany(sql, rows[i : i + CHUNK])
            else:
                if column not in present:
                    raise BlockedError(
                        f"column {table}.{column} does not exist: restore it after the "
                        "forward migration that re-creates it",
                        hint="`dbroll migrate` (or deploy the image that has it), then restore",
                    )
                pk = e["primary_key"]
                sql = f"UPDATE {_q(table)} SET {_q(column)} = %s WHERE " + " AND ".join(
                    f"{_q(k)} = %s" for k in pk
                )
                args = [(r[-1], *r[: len(pk)]) for r in rows]
                for i in range(0, len(args), CHUNK):
                    cur.executemany(sql, args[i : i + CHUNK])
            conn.commit()
            done.append({"table": table, "column": column, "rows": len(rows)})
            if progress is not None:
                what = f"{table}.{column}" if column else table
                progress(f"restored {what}: {len(rows)} row(s)")
    finally:
        conn.close()
    return done
