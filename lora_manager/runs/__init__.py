"""Background work of every app: ``tracked`` (tracked runs: start, execute, reconcile, the janitor),
``jobs`` (enqueue after commit, the ``tracked`` task decorator), ``periodic`` (chains on RQ's scheduler),
``workers`` (the worker process, liveness, a job's fate) and ``tasks`` (the project's own RQ job).

Nothing is imported here: ``AppConfig.ready()`` imports ``periodic`` at every start-up, which must not
load Redis or RQ (issue 17)."""


def on_job_failure(job, connection, exc_type, exc_value, traceback) -> None:
    """``lora_manager.runs.on_job_failure``: the failure callback RQ jobs queued by releases before
    ``runs.tracked`` existed still name (it is stored with each job); remove once none can be queued."""
    from lora_manager.runs.tracked import on_job_failure as current

    current(job, connection, exc_type, exc_value, traceback)
