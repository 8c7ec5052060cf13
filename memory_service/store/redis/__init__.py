"""The Redis backend: Redis holds the patterns, each replica searches a local cache.

store.py describes the keys, the change log and the cache.
"""
