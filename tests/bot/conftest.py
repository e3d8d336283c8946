"""Fixtures of the Celery end-to-end files: a real redis-server, the tiny CogVideoX folder, a deployment."""

from tests.support.celery_deploy import deploy, redis_server, tiny_flux, tiny_model  # noqa: F401
