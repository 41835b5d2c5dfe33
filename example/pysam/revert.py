"""A function that reverses a string: ``SELECT revert(name) FROM demo``."""

from typing import Any, List

from ekuiper_sdk import Context, Function


class RevertFunc(Function):
    def validate(self, args: List[Any]) -> str:
        return "" if len(args) == 1 else f"revert takes 1 argument, got {len(args)}"

    def exec(self, args: List[Any], ctx: Context) -> Any:
        return str(args[0])[::-1]

    def is_aggregate(self) -> bool:
        return False


revert = RevertFunc()
