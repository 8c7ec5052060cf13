"""Search over patterns: the query language, the text index and ranking.

The executor imports this package for its local fallback, so a query means
the same thing wherever it is answered.
"""
