"""The HTTP service: Flask app, persistence, and the Celery client that sends tasks by name."""
