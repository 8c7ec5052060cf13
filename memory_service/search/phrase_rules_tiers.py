"""Query understanding's rules for agents' tiers, escalation and tier strategies.

A pattern's agents each record (see schema.py) `tier` (the tier of the last
attempt; none for an agent that made no attempt, such as a skipped one),
`first_tier`, `tier_strategy`, `escalated` (the last attempt ran at a higher
tier than the first), `escalated_to` and `escalation` ("cheap_to_premium").
A comparison through `agents` holds if it holds for some agent, so each
phrase below is one clause about one agent, or a combination whose meaning
is exact:

Tiers (T is cheap, capable or premium; "agents" may be "tier", "models", ...)
- some agent: "premium agents", "used premium", "with premium", "any premium
  agent", "a premium model", "agents on premium", "tier: premium"
  -> `agents.tier = "premium"`
- no agent: "no premium", "without premium", "none premium", "never used
  premium", "not using premium", "no agent on premium", "none of the agents
  premium", "zero premium agents" -> `NOT agents.tier = "premium"`
- every agent that ran: "only cheap agents", "just cheap", "cheap agents
  only", "all agents cheap", "all cheap agents", "every agent on capable",
  "each agent used capable", "exclusively premium", "all-premium"
  -> `agents.tier = "cheap" AND NOT agents.tier = "capable" AND NOT
  agents.tier = "premium"` (some agent ran at T, none at another tier);
  "not only cheap", "not all agents cheap" -> NOT of that.
- how many agents: "2 premium agents", "at least one cheap agent", "more than
  3 capable agents", "1+ premium agents" -> `tier_distribution.premium = 2`
  (`>= 1`, `> 3`, ...): the number of agents whose last attempt ran at T.

Escalation
- "escalated", "escalations", "with escalation", "escalated agents", "agents
  that escalated" -> `agents.escalated = true`
- "never escalated", "not escalated", "didn't escalate", "without
  escalation", "no escalations", "unescalated", "no agent escalated"
  -> `NOT agents.escalated = true`
- "escalated to premium", "escalation to the premium tier", "premium
  escalations" -> `agents.escalated_to = "premium"`; negated ("never
  escalated to premium") -> `NOT agents.escalated_to = "premium"`
- "escalated from cheap" -> `agents.escalation = "cheap_to_capable" OR
  agents.escalation = "cheap_to_premium"` (one agent, from that tier up)
- "escalated from cheap to premium" -> `agents.escalation = "cheap_to_premium"`
- "started at cheap", "starting on capable", "first tier premium"
  -> `agents.first_tier = "cheap"`

Tier strategies (S is one of cheap_only, progressive, capable_first,
premium_only, learned)
- some agent followed S: "progressive escalation", "progressive strategy",
  "strategy: progressive", "escalating progressively", "cheap first" (the
  strategy that starts cheap and escalates: progressive), "capable first",
  "premium only", "cheap-only", "premium_only strategy", "learned strategy"
  -> `agents.tier_strategy = "progressive"` ... The words "progressive" and
  "learned" need a strategy word next to them; alone they stay free text.
- every agent followed S: "only progressive", "all agents progressive",
  "every agent on premium only" -> `agents.tier_strategy = S AND NOT
  agents.tier_strategy != S`
- no agent followed S: "no premium only", "without progressive escalation",
  "not capable first" -> `NOT agents.tier_strategy = S`

Agents' outcomes
- "failed agents", "an agent failed", "any agent failed" -> `agents.success
  = false`; "no agent failed" -> `NOT agents.success = false`; "all agents
  succeeded", "every agent passed" -> `agents.success = true AND NOT
  agents.success = false`

"X only" names a strategy (cheap_only, premium_only) and "only X" a tier
quantifier; "capable only", for which there is no strategy, is the tier
quantifier too. Within the group the longest phrase wins, so "no premium
only strategy" is about the strategy and "escalated to premium agents" about
the escalation.
"""

from __future__ import annotations

import re

from memory_service.search.filter import And, Node, Not, Or
from memory_service.search.phrase_rules_success import NEGATION
from memory_service.search.phrases import (
    CMP,
    NEGATIVE,
    POSITIVE,
    QTY,
    TIER,
    TIER_NOUN,
    Candidate,
    Context,
    Rule,
    canon,
    count_op,
    number_value,
    restriction,
    rule_regex,
    whole_match,
)

TIERS = ("cheap", "capable", "premium")  # In escalation order.
_AGENT = r"agents?"
_OPT_THE = r"(?:the\s+)?"
# After a tier word: "tier", "agents", "models", ...
_NOUN = rf"(?:[\s-]+{TIER_NOUN})?"
# Linking an agent to its tier: "agents on premium", "all agents were cheap".
_LINK = (
    r"(?:(?:is|was|were|are|ran|run|running|stayed|stay)\s+)?"
    r"(?:(?:on|at|in|used|using|use|uses|with)\s+)?"
)
# "... only" is not a tier quantifier or strategy when a tier follows: in
# "premium agents only cheap agents" the "only" starts "only cheap agents".
_NO_TIER_NEXT = r"(?![\s-]+(?:the\s+)?(?:cheap|capable|premium)\b)"
_TIER_NEGATION = (
    rf"(?:{NEGATION}|none|never\s+used|never\s+using|never\s+on|not\s+using|not\s+on|not\s+at"
    r"|did\s+not\s+use|didn['\u2019]?t\s+use|not\s+a\s+single|not\s+one)"
)


def _tier_term(tier: str) -> Node:
    return restriction("agents.tier", "=", tier)


def _only_tier(tier: str) -> tuple[Node, ...]:
    """Some agent ran at the tier and none at another."""
    return (_tier_term(tier), *(Not(_tier_term(other)) for other in TIERS if other != tier))


def _matched_tier(match: re.Match[str]) -> str:
    return canon(match.group("tier"))


def _negated(match: re.Match[str]) -> bool:
    return bool(match.groupdict().get("neg"))


def _some_tier(match: re.Match[str], _: Context) -> Candidate:
    term = _tier_term(_matched_tier(match))
    return whole_match(match, Not(term) if _negated(match) else term)


def _every_tier_exact(match: re.Match[str], _: Context) -> Candidate:
    terms = _only_tier(_matched_tier(match))
    return whole_match(match, Not(And(terms))) if _negated(match) else whole_match(match, *terms)


def _tier_count(match: re.Match[str], _: Context) -> Candidate | None:
    count = number_value(match.group("n"))
    if count is None:
        return None
    path = f"tier_distribution.{_matched_tier(match)}"
    return whole_match(match, restriction(path, count_op(match), count))


_TIER_RULES: tuple[Rule, ...] = (
    # Some agent, or none: "used premium", "without premium agents", "any premium agent".
    (
        rule_regex(
            rf"\b(?:(?P<neg>{_TIER_NEGATION})|used|using|uses|with|any|has|had|having)\s+"
            rf"(?:the\s+|any\s+|an?\s+)?{TIER}{_NOUN}\b"
        ),
        _some_tier,
    ),
    (rule_regex(rf"\b(?:some|an?|one\s+or\s+more)\s+{TIER}[\s-]+{TIER_NOUN}\b"), _some_tier),
    (rule_regex(rf"\b{TIER}[\s-]+{TIER_NOUN}\b"), _some_tier),
    (
        rule_regex(
            rf"\b(?:some\s+|an?\s+|any\s+)?{_AGENT}\s+(?:ran\s+|running\s+)?(?:on|at)\s+"
            rf"{_OPT_THE}{TIER}(?:[\s-]+(?:tiers?|models?|llms?))?\b"
        ),
        _some_tier,
    ),
    # No agent: "no agent on premium", "none of the agents premium".
    (
        rule_regex(
            rf"\b(?P<neg>no|none\s+of\s+the|not\s+a\s+single|not\s+one|zero)\s+{_AGENT}\s+"
            rf"{_LINK}{_OPT_THE}{TIER}(?:[\s-]+(?:tiers?|models?|llms?))?\b"
        ),
        _some_tier,
    ),
    # Every agent: "only cheap agents", "all agents on capable", "cheap agents only".
    (
        rule_regex(
            rf"\b(?P<neg>not\s+)?(?:only|just|exclusively|purely|solely|entirely|nothing\s+but"
            rf"|all)[\s-]+(?:on\s+|at\s+|using\s+|used\s+)?{_OPT_THE}{TIER}{_NOUN}\b"
        ),
        _every_tier_exact,
    ),
    (
        rule_regex(
            rf"\b(?P<neg>not\s+)?(?:all|every|each)\s+(?:(?:of\s+)?the\s+)?(?:single\s+)?"
            rf"{_AGENT}\s+{_LINK}{_OPT_THE}{TIER}(?:[\s-]+(?:tiers?|models?|llms?))?\b"
        ),
        _every_tier_exact,
    ),
    (
        rule_regex(rf"\b{TIER}[\s-]+{TIER_NOUN}[\s-]+(?:only|exclusively)\b{_NO_TIER_NEXT}"),
        _every_tier_exact,
    ),
    (rule_regex(rf"\b(?P<tier>capable)[\s_-]+only\b{_NO_TIER_NEXT}"), _every_tier_exact),
    # How many: "2 premium agents", "at least one cheap agent", "2 premium tier
    # agents". Not "models": "gpt 4 premium models" counts nothing.
    (
        rule_regex(
            rf"(?:(?P<cmp>{CMP})\s*)?(?P<n>{QTY})(?P<plus>\+)?"
            rf"(?:\s+or\s+(?P<orx>more|fewer|less))?\s+{TIER}[\s-]+(?:tiers?[\s-]+)?{_AGENT}\b"
        ),
        _tier_count,
    ),
)

# Escalation.

_ESCALATED = r"(?:escalated|escalating|escalates|escalations?)"
_ESCALATE = rf"(?:{_ESCALATED}|escalate)"  # The bare verb only after a negation.
# "no agent that", "none of the agents who": the clause is the negation too.
_WHICH = r"(?:\s+(?:that|which|who))?"
_ESCALATION_NEGATION = (
    rf"(?:{NEGATION}|none|(?:not\s+a\s+single|not\s+one)(?:\s+{_AGENT}{_WHICH})?"
    rf"|no\s+{_AGENT}{_WHICH}|none\s+of\s+the\s+{_AGENT}{_WHICH})"
)


def _escalated_term() -> Node:
    return restriction("agents.escalated", "=", True)


def _escalated(match: re.Match[str], _: Context) -> Candidate:
    return whole_match(match, Not(_escalated_term()) if _negated(match) else _escalated_term())


def _escalated_to(match: re.Match[str], _: Context) -> Candidate:
    term = restriction("agents.escalated_to", "=", _matched_tier(match))
    return whole_match(match, Not(term) if _negated(match) else term)


def _escalation(low: str, high: str) -> Node:
    return restriction("agents.escalation", "=", f"{low}_to_{high}")


def _escalated_from(match: re.Match[str], _: Context) -> Candidate | None:
    low = canon(match.group("low"))
    high = canon(match.group("high")) if match.groupdict().get("high") else None
    above = TIERS[TIERS.index(low) + 1 :]
    targets = above if high is None else [high] if high in above else []
    if not targets:
        return None  # From the top tier, or "down" a tier: no such escalation.
    terms = [_escalation(low, target) for target in targets]
    term: Node = terms[0] if len(terms) == 1 else Or(tuple(terms))
    return whole_match(match, Not(term) if _negated(match) else term)


def _first_tier(match: re.Match[str], _: Context) -> Candidate:
    return whole_match(match, restriction("agents.first_tier", "=", _matched_tier(match)))


_TIER_WORD = r"(?:[\s-]+(?:tiers?|models?|llms?))?"
# "never", "did not", "has not been": before an escalation word.
_NEGATED_ESCALATION = (
    rf"\b(?:(?P<neg>{_ESCALATION_NEGATION})\s+"
    r"(?:(?:have|has|had|be|been|was|were|get|got|ever)\s+){0,2})"
)
# Who escalated, if said: "no agent that", "never", "agents which had". Not
# the agent of "premium agent that escalated": that is the tier rule's.
_AFTER_NO_TIER = "".join(f"(?<!{tier}{gap})" for tier in TIERS for gap in (" ", "-"))
# "agents that had", "agent who": the subject of an escalation verb.
_AGENT_CLAUSE = rf"{_AGENT}{_WHICH}\s+(?:had\s+)?"
_ESCALATION_SUBJECT = rf"(?:{_NEGATED_ESCALATION}|\b{_AFTER_NO_TIER}{_AGENT_CLAUSE})?"
_ESCALATION_RULES: tuple[Rule, ...] = (
    (
        rule_regex(
            rf"{_ESCALATION_SUBJECT}"
            rf"{_ESCALATE}\s+(?:up\s+)?to\s+{_OPT_THE}{TIER}{_NOUN}\b"
        ),
        _escalated_to,
    ),
    (rule_regex(rf"\b{TIER}(?:[\s-]+tier)?[\s-]+escalations?\b"), _escalated_to),
    (
        rule_regex(
            rf"{_ESCALATION_SUBJECT}"
            rf"{_ESCALATE}\s+from\s+{_OPT_THE}(?P<low>cheap|capable|premium){_TIER_WORD}"
            rf"(?:\s+(?:up\s+)?to\s+{_OPT_THE}(?P<high>cheap|capable|premium){_NOUN})?\b"
        ),
        _escalated_from,
    ),
    (
        rule_regex(
            rf"(?:{_NEGATED_ESCALATION}{_ESCALATE}"
            rf"|\b(?:(?:with|had|has|having|any|some|an?)\s+)?{_ESCALATED})"
            rf"(?:\s+{_AGENT})?\b"
        ),
        _escalated,
    ),
    (
        rule_regex(rf"\b(?P<neg>un|non-?\s*)escalated(?:\s+{_AGENT})?\b"),
        _escalated,
    ),
    (
        rule_regex(
            rf"\b(?:(?P<neg>no)\s+)?{_AGENT_CLAUSE}{_ESCALATED}\b"
            # "agent that escalated to premium": the escalation's tier says more.
            r"(?!\s+(?:up\s+)?(?:to|from)\s)"
        ),
        _escalated,
    ),
    (
        rule_regex(
            r"\b(?:start(?:ed|ing|s)?|began|begun|beginning|begins)\s+(?:at|on|with|from|in)\s+"
            rf"{_OPT_THE}{TIER}{_NOUN}\b"
        ),
        _first_tier,
    ),
    (
        rule_regex(rf"\bfirst\s+(?:tier|attempt)\s*(?:[:=]|\s+(?:was|is|at|on))?\s*{TIER}\b"),
        _first_tier,
    ),
)

# Tier strategies: the spoken forms of each, and whether a strategy word must
# stand next to them (a bare "progressive" or "learned" is too common a word).
_STRATEGIES: tuple[tuple[str, str, bool], ...] = (
    (rf"cheap[\s_-]+only\b{_NO_TIER_NEXT}", "cheap_only", False),
    (rf"premium[\s_-]+only\b{_NO_TIER_NEXT}", "premium_only", False),
    (r"capable[\s_-]+first", "capable_first", False),
    (r"cheap[\s_-]+first", "progressive", False),
    (r"progressive(?:ly)?", "progressive", True),
    (r"learned|learning", "learned", True),
)
_STRATEGY_WORD = (
    r"(?:(?:tier[\s_-]+)?strateg(?:y|ies)|escalations?|escalated|escalating|tiering|tiers?)"
)
_STRATEGY_NAMES = "|".join(
    f"(?P<s{index}>{spoken})" for index, (spoken, _, _) in enumerate(_STRATEGIES)
)
_FOLLOWED = r"(?:(?:followed|following|follow|used|using|on|with|had)\s+)?"


def _strategy_name(match: re.Match[str]) -> tuple[str, bool]:
    for index, (_, name, needs_word) in enumerate(_STRATEGIES):
        if match.group(f"s{index}"):
            return name, needs_word
    raise AssertionError("no strategy matched")  # The regex admits nothing else.


def _strategy(match: re.Match[str], _: Context) -> Candidate | None:
    name, needs_word = _strategy_name(match)
    groups = match.groupdict()
    if needs_word and not (groups.get("before") or groups.get("after") or groups.get("every")):
        return None
    term = restriction("agents.tier_strategy", "=", name)
    if groups.get("neg"):
        return whole_match(match, Not(term))
    if groups.get("every"):
        return whole_match(match, term, Not(restriction("agents.tier_strategy", "!=", name)))
    return whole_match(match, term)


_STRATEGY_RULES: tuple[Rule, ...] = (
    (
        rule_regex(
            rf"\b(?:(?P<neg>{_TIER_NEGATION})\s+|(?P<every>only|(?:all|every|each)\s+"
            rf"(?:(?:of\s+)?the\s+)?{_AGENT})\s+{_FOLLOWED})?"
            rf"(?P<before>(?:tier[\s_-]+)?strategy\s*(?:[:=]|\s+(?:is|was|of))?\s*)?"
            rf"{_OPT_THE}(?:{_STRATEGY_NAMES})"
            rf"(?P<after>[\s-]+{_STRATEGY_WORD}\b(?![\s-]+(?:up\s+)?(?:to|from)\b))?"
            rf"(?:[\s-]+{_AGENT})?\b"
        ),
        _strategy,
    ),
    (
        rule_regex(rf"\b(?:{_ESCALATED}|escalate)\s+(?P<after>progressively)\b"),
        lambda match, _: whole_match(
            match, restriction("agents.tier_strategy", "=", "progressive")
        ),
    ),
)

# Agents' outcomes.


def _agent_outcome(match: re.Match[str], _: Context) -> Candidate:
    failed = re.fullmatch(NEGATIVE, match.group("word"), re.IGNORECASE) is not None
    some_failed = restriction("agents.success", "=", False)
    if match.groupdict().get("every"):
        # Every agent succeeded: some did, and none did not.
        if failed:
            return whole_match(
                match,
                Not(restriction("agents.success", "=", True)),
                restriction("agents.success", "=", False),
            )
        return whole_match(match, restriction("agents.success", "=", True), Not(some_failed))
    if match.groupdict().get("neg"):
        return whole_match(match, Not(some_failed) if failed else some_failed)
    return whole_match(match, some_failed if failed else restriction("agents.success", "=", True))


_OUTCOME_RULES: tuple[Rule, ...] = (
    (
        rule_regex(
            rf"\b(?:(?P<every>all|every|each)\s+(?:(?:of\s+)?the\s+)?|(?P<neg>no|none\s+of\s+the)\s+"
            rf"|(?:any|some|an?|one|at\s+least\s+one)\s+){_AGENT}\s+(?:(?:that|which|who)\s+)?"
            rf"(?:(?:has|have|had)\s+)?(?P<word>{POSITIVE}|{NEGATIVE})\b"
        ),
        _agent_outcome,
    ),
    (rule_regex(rf"\b(?P<word>failed|failing|succeeded|successful)\s+{_AGENT}\b"), _agent_outcome),
)

# Tried together: within one group the longest phrase wins, so "escalated to
# premium agents" is one escalation and "no premium only strategy" one strategy.
TIER_RULES: tuple[Rule, ...] = (
    *_TIER_RULES,
    *_ESCALATION_RULES,
    *_STRATEGY_RULES,
    *_OUTCOME_RULES,
)
# Later than TIER_RULES, so "premium tier cheap tier" is not read as "tier cheap".
TIER_NAMED_RULES: tuple[Rule, ...] = (
    (rule_regex(rf"\btiers?\s*(?:[:=]|\s+is)?\s*{TIER}\b"), _some_tier),
)
