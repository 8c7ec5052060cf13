"""The stop words of a query language of questions: the one list.

People ask for runs in sentences ("show me the runs that used jest for the
python package"). The words that only make it a sentence (function words,
question words, request words, and the nouns every pattern is: runs,
workflows, patterns) would match nearly everything, or nothing, so they do
not rank: a bare word in this list is dropped from the ranked (SHOULD)
words. A "quoted" or +required word is never dropped, and a query of
nothing but these words ranks on them (see reading.py).

Query understanding drops the same words when they only tie an understood
phrase to the sentence ("runs *with* premium agents"); see understanding.py.

Left out on purpose: negations ("not", "no", "without", "never", "none",
"except") turn a phrase's meaning around, so they are never dropped
silently; comparators and time words are read by understanding's rules; and
nothing a pattern's own text names (template ids, a form's one-word option
values, tiers, success words).
"""

from __future__ import annotations

STOP_WORDS = frozenset(
    (
        # Articles, determiners and quantifiers.
        *("a", "an", "the", "this", "that", "these", "those", "some", "any", "all"),
        *("each", "every", "both", "either", "another", "such", "same", "only"),
        # Pronouns.
        *("i", "me", "my", "mine", "myself", "we", "us", "our", "ours", "you", "your"),
        *("yours", "it", "its", "itself", "they", "them", "their", "theirs", "he", "him"),
        *("his", "she", "her", "hers", "one", "ones", "there", "here", "something"),
        *("anything", "everything", "thing", "things", "s"),  # "s" of "what's", "let's".
        # Question words.
        *("what", "which", "who", "whom", "whose", "where", "when", "why", "how"),
        *("whatever", "whichever"),
        # Request words.
        *("show", "list", "find", "get", "give", "fetch", "search", "look", "looking"),
        *("display", "tell", "see", "view", "want", "need", "please", "kindly", "let", "lets"),
        # Be, have, do and the modals.
        *("is", "are", "was", "were", "be", "been", "being", "am", "do", "does", "did"),
        *("done", "doing", "have", "has", "had", "having", "will", "would", "shall"),
        *("should", "may", "might", "must", "can", "could"),
        # Prepositions, conjunctions and adverbs that only connect.
        *("of", "in", "on", "at", "by", "for", "from", "to", "with", "within", "into"),
        *("onto", "about", "as", "like", "via", "per", "and", "or", "but", "if", "so"),
        *("then", "also", "just", "too", "very", "really", "whereas", "while"),
        # What every pattern is.
        *("run", "runs", "ran", "workflow", "workflows", "pattern", "patterns"),
        *("execution", "executions", "job", "jobs"),
        # Ways of saying "has this in it".
        *("use", "used", "uses", "using", "involve", "involves", "involved", "involving"),
        *("contain", "contains", "containing", "mention", "mentions", "mentioned"),
        *("mentioning", "related", "regarding", "concerning", "named", "called"),
    )
)


def is_stop_word(word: str) -> bool:
    """Whether a lower-case word is a stop word."""
    return word in STOP_WORDS
