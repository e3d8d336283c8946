"""Clients for outside web services (no chat or intent logic here)."""
