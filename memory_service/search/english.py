"""Everyday English words a form's option value may also be, so that a value
spelled like one ("go", "standard", "none") is read as an answer only with
context, and a word spelled like one is never taken for a misspelt name.

These are facts about English, not about any template: the vocabulary itself
always comes from the templates' forms (see form_lexicon.py).
"""

from __future__ import annotations

# Words that point at or count things rather than name them: a value spelled
# like one ("none", "other", "all") needs its question's words nearby.
FUNCTION_WORDS = frozenset(
    (
        *("a", "an", "the", "all", "any", "both", "each", "either", "every", "few", "many"),
        *("much", "more", "most", "neither", "no", "none", "not", "nothing", "nobody"),
        *("one", "only", "other", "others", "own", "same", "several", "some", "such"),
        *("that", "these", "this", "those", "yes", "true", "false", "on", "off", "default"),
        *("auto", "unknown", "misc", "etc", "else", "also", "just", "even", "still", "yet"),
        *("always", "never", "sometimes", "often", "usually", "maybe", "either", "whatever"),
        *("i", "you", "he", "she", "it", "we", "they", "me", "him", "her", "us", "them"),
        *("my", "your", "his", "its", "our", "their", "what", "which", "who", "whom"),
        *("whose", "when", "where", "why", "how", "there", "here", "then", "than", "so"),
        *("and", "or", "but", "if", "because", "as", "until", "while", "of", "at", "by"),
        *("for", "with", "about", "against", "between", "into", "through", "during"),
        *("before", "after", "above", "below", "to", "from", "up", "down", "in", "out"),
        *("over", "under", "again", "further", "once", "is", "are", "was", "were", "be"),
        *("been", "being", "have", "has", "had", "having", "do", "does", "did", "doing"),
        *("can", "could", "should", "would", "may", "might", "must", "shall", "will"),
    )
)

# Frequent content words: a value spelled like one ("go", "major", "high")
# needs context (its question's words, its template, or "in X"/"using X").
COMMON_WORDS = FUNCTION_WORDS | frozenset(
    (
        *("go", "get", "make", "take", "see", "come", "know", "think", "look", "want"),
        *("give", "use", "find", "tell", "ask", "work", "seem", "feel", "try", "leave"),
        *("call", "run", "keep", "let", "begin", "help", "show", "play", "move", "live"),
        *("set", "start", "stop", "open", "close", "read", "write", "build", "check", "fix"),
        *("change", "add", "remove", "put", "bring", "hold", "turn", "follow", "lead"),
        *("high", "low", "medium", "big", "small", "large", "little", "long", "short"),
        *("new", "old", "good", "bad", "best", "better", "great", "first", "last", "next"),
        *("early", "late", "major", "minor", "main", "standard", "normal", "basic", "simple"),
        *("full", "free", "public", "private", "internal", "external", "local", "global"),
        *("general", "common", "special", "certain", "clear", "real", "sure", "hard"),
        *("easy", "fast", "slow", "quick", "safe", "final", "critical", "important"),
        *("whole", "top", "bottom", "left", "right", "light", "dark", "hot", "cold"),
        *("red", "blue", "green", "black", "white", "unit", "part", "line", "point"),
        *("level", "type", "kind", "case", "form", "way", "time", "day", "week", "month"),
        *("year", "thing", "world", "life", "hand", "place", "number", "group", "problem"),
        *("fact", "system", "program", "question", "service", "data", "code", "file"),
        *("page", "test", "tests", "note", "notes", "name", "list", "state", "source"),
        *("power", "performance", "manual", "custom", "partial", "advanced", "complex"),
        *("daily", "weekly", "monthly", "yearly", "now", "today", "well", "very", "back"),
        *("home", "house", "family", "people", "person", "team", "user", "users", "end"),
        *(
            "side",
            "head",
            "base",
            "based",
            "plain",
            "area",
            "money",
            "story",
            "issue",
            "order",
            "power",
        ),
        *("match", "batch", "watch", "catch", "mark", "make", "made", "rest", "trust"),
        *("must", "just", "best", "last", "past", "post", "most", "host", "cost", "lost"),
        *("class", "model", "mode", "node", "note", "role", "rule", "tool", "pool"),
        *("step", "stage", "phase", "plan", "goal", "task", "job", "jobs", "tag", "tags"),
        *("draft", "final", "single", "double", "multiple", "every", "various", "extra"),
        *("strong", "weak", "heavy", "soft", "loose", "tight", "deep", "wide", "narrow"),
        *("reference", "guide", "guides", "summary", "report", "review", "version"),
        *("integration", "architecture", "security", "container", "containers", "secret"),
        *("secrets", "developer", "developers", "operator", "operators", "deployment"),
        *("production", "network", "server", "client", "database", "cloud", "storage"),
        *("process", "design", "quality", "feature", "update", "upgrade", "migration"),
        *("output", "input", "result", "error", "warning", "failure", "status", "message"),
        *("event", "request", "response", "access", "account", "policy", "content", "text"),
        *("image", "images", "library", "module", "project", "product", "support", "target"),
    )
)
