"""Processes that run jobs away from the bot: the serve-video HTTP host, the Celery GPU worker, the group
worker and rank group that split one video over several GPUs.
"""
