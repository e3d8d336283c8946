"""The job subsystem: generated pictures and videos, accepted durably, run one at a time per GPU, posted back.

One home per concern:

* `types`      plain data: `JobRequest`, `Job`, `JobState`, `Limits`, `Receipt`, `QueueLimitReached`,
               the `JobKind` protocol (the work of one kind) and `describe` (a #队列 line).
* `store`      `JobStore`, SQLite under `data_dir/jobs.sqlite3`: the source of truth for delivery.
* `admission`  pure rules: `limits_for` (config -> `Limits`), `refusal` (the limits and their wording,
               applied inside the store's insert transaction, so nothing is ever refunded), the day in
               `schedules.timezone`, and the fairness policy `pick_next` / `run_order`.
* `queue`      `JobQueue`: what features call (`check`, `admit`, `submit`, `list`, `get`, `cancel`,
               `status`, `label`), claims jobs in fair order and hands each to a worker backend.
               A request is checked once: `check` takes the kind's typed request (`VideoRequest`...)
               and gives back a `CheckedRequest`, whose job `submit` stores as is; plain params from
               another process (an HTTP body) are parsed by the kind and checked in `submit`.
* `eta`        waiting times from measured runs only (`eta_s`), for the receipt.
* `endings`    `RunEndings`: how a run ended (done, stopped, failed with the asker's sentence), written.
* `outbox`     `Outbox`: posts finished jobs in finish order and retries; all result wording.
* `retention`  `Retention`: removes media older than its kind's retention.
* `backends`   the `WorkerBackend` seam and `LocalBackend` (a worker thread in this process).
* `render_process` `RenderProcessBackend`: local jobs rendered in a child process while they render on the
               CPU (`jobs.render_process`), so the render never holds the event loop's GIL.
* `remote`     `RemoteBackend`: video jobs rendered by an `xiaoai serve-video` host.
* `video_api`  `ApiVideoBackend`: video jobs made by a hosted API (智谱 / 通义万相), paid once, with
               the job store as the provider task's ledger; `video_choice` resolves `video.backend: auto`.
* `kinds`      the job kinds the bot hosts (`VideoKind`, `ImageKind`), imported by the composition root.
* `warmup`     `LibraryWarmup` and `ModelPreload`: the models made ready at start (video and image).

The worker-backend seam (see `backends.WorkerBackend`): `name`, `slots`, `handles(kind)`,
`live_workers()`, `start()`, `stop()`, `check(kind, request)` (the kind's typed request), and
`execute(kind, job, output_stem, on_progress, should_stop) -> Path`. The queue keeps persistence, order,
cancellation flags and delivery whatever the backend; a backend only runs one claimed job to a file.
A distributed backend (Celery workers on other hosts) plugs in as one more `WorkerBackend` placed first
in `JobQueue(backends=[...])`: `handles` = the kinds its workers serve; `check` runs the kind's cheap
check in a thread (the bot has the config); `execute` sends `job.request.to_json()` with
`task_id=job.name` (stable, so a resubmission is idempotent), polls the task in a thread, feeds the
progress the worker publishes to `on_progress`, sets the cancellation flag the worker's step callback
reads when `should_stop()` turns true, and writes the bytes that come back through the result backend to
`output_stem` plus a suffix; `live_workers()` counts the workers that answered the last heartbeat (the
ETA divides by it, and the ack can say when it is 0); `slots` bounds the jobs handed out at once; a job
the store still lists as queued or running after a broker loss is simply executed again on restart.
"""

from bot.jobs import types
from bot.jobs.admission import MAX_OVERTAKES, limits_for, pick_next, run_order
from bot.jobs.backends import LocalBackend, WorkerBackend
from bot.jobs.outbox import CANCELLED_TEXT, RESTART_REASON, Deliver, Outbox
from bot.jobs.queue import JobQueue
from bot.jobs.remote import RemoteBackend
from bot.jobs.store import JobStore
from bot.jobs.types import *  # noqa: F403 - the plain data, listed in types.__all__

__all__ = [
    "CANCELLED_TEXT", "MAX_OVERTAKES", "RESTART_REASON", "Deliver", "JobQueue", "JobStore", "LocalBackend",
    "Outbox", "RemoteBackend", "WorkerBackend", "limits_for", "pick_next", "run_order", *types.__all__,
]
