"""The worker side: Celery tasks (thin) and the job runner (the work)."""
