"""The `discounts[]` entry of a Dintero receipt: a discount *rule* with `refs[]` added.

Split out of `model.py` (which would pass its ~400-line budget otherwise) because this
shape belongs to Dintero's Discounts API, not the Receipts API, and is modelled
differently on purpose:

- The rule objects (`DiscountRefs`, `Requirement`, `Reward`, `Limitation`) allow extra
  keys. Only part of the Discounts schema is visible to us (API-NOTES §1.3, S4), and a
  till that forwards a rule it got from Dintero must not be rejected for a field Dintero
  itself added. What we do know is typed: `requirement.purchase_from/purchase_to` and
  `reward.type/value` are required, `reward.type` is an enum.
- `refs[]`, the receipt-specific part, is strict (`extra="forbid"`) like the rest of the
  receipt.

API-NOTES §1.3 [INF]: a till forwarder should normally not send `discounts` at all and
carry POS discounts in `items[].discount_lines` instead. Imports pydantic only.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, StrictBool, StrictInt, StrictStr


class _Rule(BaseModel):
    """A part of a discount rule: known fields typed, unknown ones passed through."""

    model_config = ConfigDict(extra="allow", hide_input_in_errors=True)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)


RewardType = Literal[
    "discount_amount",
    "discount_percent",
    "discount_item_new_price",
    "discount_item_quantity",
    "discount_item_percent",
    "discount_mix_new_price",
    "discount_debit",
]


class Requirement(_Rule):
    purchase_from: AwareDatetime
    purchase_to: AwareDatetime
    customer: dict[str, Any] | None = None
    item: dict[str, Any] | None = None
    store_ids: list[StrictStr] | None = None
    gross_amount: StrictInt | None = None
    net_amount: StrictInt | None = None
    currencies: list[Any] | None = None
    stamp: StrictInt | None = None
    discount_code: StrictStr | None = None
    store: dict[str, Any] | None = None


class Reward(_Rule):
    type: RewardType
    value: Any  # "unit of the value is resolved from the reward type": 10.5, 10000, 1
    values: list[dict[str, Any]] | None = None
    base: Literal["net", "gross"] | None = None
    effect: Literal["discount", "bonus"] | None = None


class Limitation(_Rule):
    discount_activation: list[dict[str, Any]] | None = None
    discount_hours: dict[str, Any] | None = None
    discount_reward_usage: StrictInt | None = None
    discount_combination: Literal[-1, 0] | None = None
    discount_eligible: (
        Literal[
            "item_eligible_for_discount",
            "item_eligible_for_discount_no_discount",
            "receipt_no_discount",
        ]
        | None
    ) = None
    discount_repeat_usage: StrictInt | None = None
    stamp_expire_days: StrictInt | None = None
    blacklist: list[dict[str, Any]] | None = None


class Link(_Strict):
    href: StrictStr
    rel: StrictStr | None = None
    type: StrictStr | None = None


class RefStatistics(_Strict):
    amount: StrictInt | None = None
    bonus: StrictInt | None = None
    debit_balance: StrictInt | None = None
    stamp: StrictInt | None = None
    usage: StrictInt | None = None


class RefItem(_Strict):
    line_id: StrictInt | None = None
    bonus: StrictInt | None = None
    amount: StrictInt | None = None


class DiscountRef(_Strict):
    id: StrictStr | None = None
    stamp: StrictInt | None = None
    amount: StrictInt | None = None
    bonus: StrictInt | None = None
    statistics: RefStatistics | None = None
    items: list[RefItem] | None = None
    usage: StrictInt | None = None


class DiscountRefs(_Rule):
    """One discount rule referenced by the receipt's `discount_lines`, with its uses."""

    requirement: Requirement
    reward: Reward
    id: StrictStr | None = None
    campaign_id: StrictStr | None = None
    active: StrictBool | None = None
    private: StrictBool | None = None
    type: Literal["item", "receipt"] | None = None
    name: StrictStr | None = None
    receipt_text: StrictStr | None = None
    visible_from: AwareDatetime | None = None
    description: StrictStr | None = None
    limitation: Limitation | None = None
    metadata: dict[str, Any] | None = None
    links: list[Link] | None = None
    refs: list[DiscountRef] | None = None
