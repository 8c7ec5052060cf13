"""The Anthropic runner: the Messages API (POST {base}/v1/messages)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, ValidationError

from executor_service.runners.llm import (
    MAX_OUTPUT_TOKENS,
    LLMRunner,
    MalformedReplyError,
    Reply,
    Usage,
)
from executor_service.runners.prompt import Prompt

API_VERSION = "2023-06-01"


class _Usage(BaseModel):
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)


class _Block(BaseModel):
    type: str
    text: str = ""


class _Message(BaseModel):
    model: str = ""
    content: list[_Block]
    stop_reason: str | None = None
    usage: _Usage | None = None


class AnthropicRunner(LLMRunner):
    """Attempts via Anthropic's Messages API."""

    name = "anthropic"
    api = "Anthropic API"

    def _endpoint(self, base_url: str) -> str:
        return f"{base_url}/v1/messages"

    def _headers(self, api_key: str) -> dict[str, str]:
        return {"x-api-key": api_key, "anthropic-version": API_VERSION}

    def _body(self, model: str, prompt: Prompt) -> dict[str, Any]:
        return {
            "model": model,
            "max_tokens": MAX_OUTPUT_TOKENS,
            "system": prompt.system,
            "messages": [{"role": "user", "content": prompt.user}],
        }

    def _read(self, payload: object) -> Reply:
        try:
            message = _Message.model_validate(payload)
        except ValidationError as error:
            raise MalformedReplyError.from_validation(error) from None
        usage = message.usage
        return Reply(
            text="".join(block.text for block in message.content if block.type == "text"),
            usage=Usage(usage.input_tokens, usage.output_tokens) if usage else None,
            model=message.model,
            truncated=message.stop_reason == "max_tokens",
        )
