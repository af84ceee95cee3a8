"""The chart of accounts: stable account keys (what the journal stores) and their codes.

Codes and names are configuration (`LEDGER_ACCOUNT_CODES`, `key=code,…`), applied when
the journal is read, so changing a code never rewrites a posted line.
"""

from __future__ import annotations

from dataclasses import dataclass

from ledger import posting as p
from ledger.config import ConfigurationError


@dataclass(frozen=True)
class Account:
    key: str
    code: str
    name: str
    normal_balance: str  # "debit" or "credit"


DEFAULTS: tuple[Account, ...] = (
    Account(p.BANK, "1002", "Bank 银行存款", "debit"),
    Account(p.ACCOUNTS_RECEIVABLE, "1122", "Accounts receivable 应收账款", "debit"),
    Account(p.TAX_RECEIVABLE, "2221.01", "Input VAT 应交税费-进项税额", "debit"),
    Account(p.INVENTORY, "1405", "Inventory 库存商品", "debit"),
    Account(p.STOCK_IN_TRANSIT, "1406", "Stock in transit 在途物资", "debit"),
    Account(p.ACCOUNTS_PAYABLE, "2202", "Accounts payable 应付账款", "credit"),
    Account(p.GRNI, "2202.99", "Goods received not invoiced 暂估应付", "credit"),
    Account(p.TAX_PAYABLE, "2221.02", "Output VAT 应交税费-销项税额", "credit"),
    Account(p.SALES_REVENUE, "6001", "Sales revenue 主营业务收入", "credit"),
    Account(p.SALES_RETURNS, "6001.99", "Sales returns 销售退回", "debit"),
    Account(p.COGS, "6401", "Cost of goods sold 主营业务成本", "debit"),
    Account(p.INVENTORY_ADJUSTMENTS, "6711", "Inventory adjustments 存货盘盈盘亏", "debit"),
    Account(p.PURCHASE_PRICE_VARIANCE, "6402", "Purchase price variance 采购价差", "debit"),
    Account(p.SAMPLES, "6601.01", "Samples 销售费用-样品", "debit"),
    Account(p.INTERNAL_USE, "6602.01", "Internal use 管理费用-内部领用", "debit"),
)


@dataclass(frozen=True)
class Chart:
    accounts: dict[str, Account]

    @classmethod
    def parse(cls, text: str = "") -> Chart:
        """The default chart with the codes `text` (`key=code,…`) overrides."""
        accounts = {account.key: account for account in DEFAULTS}
        for item in filter(None, (part.strip() for part in text.split(","))):
            key, _, code = item.partition("=")
            if key not in accounts or not code:
                raise ConfigurationError(
                    f"LEDGER_ACCOUNT_CODES is key=code,… with keys among "
                    f"{', '.join(sorted(accounts))}; got {item!r}.")
            old = accounts[key]
            accounts[key] = Account(key, code, old.name, old.normal_balance)
        return cls(accounts)

    def code(self, key: str) -> str:
        return self.accounts[key].code

    def name(self, key: str) -> str:
        return self.accounts[key].name
