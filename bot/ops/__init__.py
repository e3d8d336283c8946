"""Running the bot for a family: admin commands, private notices to admins, disconnect alerts, daily
schedules.
"""
