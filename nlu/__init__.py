"""Language understanding: the LLM classifier, the embedded (no key) classifier, follow-ups of the last
turn, rule-based slots and the lexicon that makes a message plain.
"""
