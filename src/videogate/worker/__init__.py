"""The task engine: claims due tasks with a lease and moves each one step.

States and steps (DESIGN.md): ``queued`` → submit → ``running`` → poll … → ``fetching``
→ copy the result into our blob store → ``succeeded``. Every write is a compare-and-set
on the status and the lease, so a task cancelled meanwhile, or taken over by another
worker after this one stalled, is never overwritten. A worker that dies leaves leases
that lapse; any other worker then takes those tasks over.
"""

from videogate.worker.loop import Worker
from videogate.worker.retry import poll_delay

__all__ = ["Worker", "poll_delay"]
