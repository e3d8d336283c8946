"""The built-in intents, each a plugin: a module here that declares `INTENT` (or `INTENTS`) is found by
`bot.plugin.load_intents`; the other modules are the flows they share (`slots.py` for the AMap intents,
`generation.py` for pictures and videos) and `base.py` (the handler type, `UserInputError`)."""
