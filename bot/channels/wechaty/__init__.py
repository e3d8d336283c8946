"""The WeChat transport through a puppet-service gateway (python-wechaty, pinned; compat.py patches it for
Python 3.11+).
"""
