"""Model list prices, and the cost of an attempt from its token usage."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from executor_service.runners.errors import RunnerConfigError

SHIPPED_PRICES = Path(__file__).with_name("prices.json")


class ModelPrice(BaseModel):
    """US dollars per million input and output tokens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_per_mtok: float = Field(ge=0, allow_inf_nan=False)
    output_per_mtok: float = Field(ge=0, allow_inf_nan=False)


class PriceTable(BaseModel):
    """A dated price list; `source` says where the numbers come from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    as_of: str = Field(min_length=1)
    source: str = Field(min_length=1)
    models: dict[str, ModelPrice]

    def price(self, model: str) -> ModelPrice:
        """The price of the model; a missing model is a configuration error."""
        try:
            return self.models[model]
        except KeyError:
            raise RunnerConfigError(
                f"no price for model {model!r} in the price table (as of {self.as_of}); "
                "add it to a table named by EXECUTOR_PRICE_TABLE, or pick a priced model"
            ) from None

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> float:
        """The cost in US dollars of that usage of the model."""
        price = self.price(model)
        return (
            input_tokens * price.input_per_mtok + output_tokens * price.output_per_mtok
        ) / 1_000_000


def load_price_table(path: Path | None = None) -> PriceTable:
    """The table at `path`, else the shipped one; unreadable or invalid is a config error."""
    source = path or SHIPPED_PRICES
    try:
        return PriceTable.model_validate_json(source.read_bytes())
    except OSError as error:
        raise RunnerConfigError(
            f"cannot read the price table {source}: {error.strerror or error}"
        ) from None
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, issue['loc'])) or '(root)'}: {issue['msg']}"
            for issue in error.errors()
        )
        raise RunnerConfigError(f"invalid price table {source}: {problems}") from None
