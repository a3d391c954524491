"""``videogate batch jobs.jsonl --out DIR``: many clips, resumable after any interruption.

Each line of ``jobs.jsonl`` is one request (keys in :data:`JOB_KEYS`). Lines run with at
most ``--concurrency`` tasks in flight; each clip is downloaded as soon as it is ready.

``DIR/journal.jsonl`` is written (and fsynced) before and after every create: a line's
``Idempotency-Key`` and request before the ``POST``, its task id right after, its result
at the end. Running the same command again replays the journal: finished lines are
skipped, created tasks are waited for by id, and a create that may or may not have
reached the server is re-sent with the same key and body (videogate returns the same
task) or, against a relay or Ark, looked up among the recent tasks before creating anew.
``DIR/results.jsonl`` is the manifest: one line per job.

The pieces: :mod:`.jobs` (the jobs file), :mod:`.journal` (journal and manifest),
:mod:`.runner` (the run), :mod:`.command` (the command).
"""

from videogate.cli.batch.command import batch_command

__all__ = ["batch_command"]
