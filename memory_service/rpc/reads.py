"""GetPattern, ListPatterns and CountPatterns: stored patterns read by id, by page and by group."""

from __future__ import annotations

from attune.memory.v1 import memory_pb2
from memory_service.access.audit import AuditAction
from memory_service.patterns import namespace_violations
from memory_service.rpc.base import Context, RpcBase, check_address
from memory_service.rpc.gate import guarded
from memory_service.search.filter import FilterError, compile_filter
from memory_service.search.index import PageQuery
from memory_service.search.schema import PATTERN_SCHEMA
from memory_service.security.identity import Action, Principal
from memory_service.servicekit.errors import invalid_argument, not_found
from memory_service.servicekit.paging import (
    ITEM_OVERHEAD,
    decode_token,
    encode_token,
    fit_page,
    next_offset,
)
from memory_service.sizes import RESPONSE_BUDGET, unservable

DEFAULT_LIST_PAGE = 50
# Groups one CountPatterns answer carries (tags or template ids can be many).
MAX_GROUPS = 1000
MAX_LIST_PAGE = 1000
# Fields CountPatterns can group by: scalar fields and agents' fields.
GROUPABLE = (
    "template_id",
    "success",
    "type",
    "classification",
    "runner",
    "agents.role",
    "agents.tier",
    "agents.success",
    "agents.tier_strategy",
    "agents.escalated",
    "agents.escalation",
    "tags",
)


def groupable(field: str) -> bool:
    """Whether CountPatterns can group by the field."""
    return field in GROUPABLE


def parse_order_by(text: str) -> list[tuple[str, bool]]:
    """`create_time desc, id` as [(field, descending)]; ValueError if unknown."""
    order = []
    for part in (piece.strip() for piece in text.split(",") if piece.strip()):
        words = part.split()
        if (
            words[0] not in ("create_time", "id")
            or len(words) > 2
            or (len(words) == 2 and words[1].lower() not in ("asc", "desc"))
        ):
            raise ValueError(f"{part!r}: order by create_time or id, each optionally desc")
        order.append((words[0], len(words) == 2 and words[1].lower() == "desc"))
    return order


class PatternReadRpcs(RpcBase):
    """Reads patterns by id, a page at a time, or as counts."""

    @guarded(AuditAction.GET, Action.READ, lambda q, r: ([q.pattern_id], 1))
    async def GetPattern(
        self, request: memory_pb2.GetPatternRequest, context: Context, principal: Principal
    ) -> memory_pb2.GetPatternResponse:
        check_address(request.namespace, request.pattern_id)
        pattern = await self._store.get(
            request.namespace, request.pattern_id, viewer=principal.user_id
        )
        if pattern is None:
            raise not_found("pattern", f"{request.namespace}/{request.pattern_id}")
        if (size := pattern.ByteSize()) > RESPONSE_BUDGET - ITEM_OVERHEAD:
            raise unservable(request.namespace, request.pattern_id, size)
        return memory_pb2.GetPatternResponse(pattern=pattern)

    @guarded(
        AuditAction.LIST, Action.READ, lambda q, r: ([p.id for p in r.patterns], len(r.patterns))
    )
    async def ListPatterns(
        self, request: memory_pb2.ListPatternsRequest, context: Context, principal: Principal
    ) -> memory_pb2.ListPatternsResponse:
        violations = namespace_violations(request.namespace)
        condition, order = None, [("create_time", True)]
        try:
            condition = compile_filter(request.filter, PATTERN_SCHEMA)
        except FilterError as error:
            violations.append(("filter", str(error)))
        try:
            order = parse_order_by(request.order_by) or order
        except ValueError as error:
            violations.append(("order_by", str(error)))
        if not 0 <= request.page_size <= MAX_LIST_PAGE:
            violations.append(("page_size", f"must be between 0 and {MAX_LIST_PAGE}"))
        if violations:
            raise invalid_argument(violations)
        size = request.page_size or DEFAULT_LIST_PAGE
        scope = "|".join((request.namespace, request.filter, request.order_by))
        offset = decode_token(request.page_token, scope)
        patterns, total = await self._store.page(
            PageQuery(request.namespace, condition, order, size, offset), viewer=principal.user_id
        )
        for pattern in patterns:
            pattern.ClearField("embedding")  # Internal to search.
        # A page stays within what a client can receive (see sizes.py).
        kept, cut = fit_page(patterns, memory_pb2.Pattern.ByteSize, _pattern_id, RESPONSE_BUDGET)
        after = next_offset(offset, size, cut)
        return memory_pb2.ListPatternsResponse(
            patterns=kept,
            total_size=total,
            next_page_token=encode_token(after, scope) if after < total else "",
        )

    @guarded(AuditAction.COUNT, Action.READ, lambda q, r: ((), r.total_count))
    async def CountPatterns(
        self, request: memory_pb2.CountPatternsRequest, context: Context, principal: Principal
    ) -> memory_pb2.CountPatternsResponse:
        violations = namespace_violations(request.namespace)
        condition = None
        try:
            condition = compile_filter(request.filter, PATTERN_SCHEMA)
        except FilterError as error:
            violations.append(("filter", str(error)))
        if request.group_by and not groupable(request.group_by):
            violations.append(
                ("group_by", f"not a field to group by; use one of {', '.join(GROUPABLE)}")
            )
        if violations:
            raise invalid_argument(violations)
        total, groups = await self._store.count(
            request.namespace, condition, request.group_by, viewer=principal.user_id
        )
        # Largest first, so the cap keeps the groups that matter most.
        groups = sorted(groups, key=lambda group: -group.count)
        return memory_pb2.CountPatternsResponse(
            total_count=total,
            truncated=len(groups) > MAX_GROUPS,
            groups=[
                memory_pb2.PatternGroup(
                    key=group.key,
                    count=group.count,
                    success_count=group.success_count,
                    success_rate=group.success_count / group.count if group.count else 0.0,
                    total_cost_usd=group.total_cost_usd,
                    mean_cost_usd=group.total_cost_usd / group.count if group.count else 0.0,
                )
                for group in groups[:MAX_GROUPS]
            ],
        )


def _pattern_id(pattern: memory_pb2.Pattern) -> str:
    return pattern.id
