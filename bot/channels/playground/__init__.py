"""The web playground transport: a local page that looks like a group chat (channel, web app, transcript,
static files).
"""
