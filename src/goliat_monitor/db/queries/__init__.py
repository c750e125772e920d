"""Every read and write the server makes, as functions of a connection, one module per resource.

- `ingest`: the hot path, what a worker's heartbeat or GUI message does (and message-id dedup).
- `workers`: worker sessions, their logs, samples and labels (the read side).
- `assignments`: claims, leases, retry and requeue.
- `studies`: super studies, with their assignments, history and ETA.
- `artifacts`: result files and screenshots.
- `common`: the `Clock` and `Changes` every write takes and returns, ids, assignment history.

Route handlers call these through `Database.read` / `Database.write`; each write function runs in
its own savepoint, so raising an `ApiError` half-way leaves the database exactly as it was.
Functions take SQL parameters and return rows or small dataclasses of rows; the JSON the API
answers with is shaped in `server/views.py`.

Imports run one way, so there are no cycles: `common` <- `ingest`, `studies` <- `assignments`
<- `artifacts` <- `workers`.
"""
