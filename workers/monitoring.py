"""Celery tasks for the monitoring app. Each task re-fetches by id, guards on status and calls one service."""
