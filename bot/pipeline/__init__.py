"""The message pipeline: the dispatcher (gates, understanding, the intent's handler, one error route), the
gates, the per-message Context, and the conversation (history and the sender of every outgoing line).
"""
