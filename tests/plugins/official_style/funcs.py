from typing import Any, List

from ekuiper import Context, Function


class RevertFunc(Function):

    def __init__(self):
        pass

    def validate(self, args: List[Any]):
        if len(args) != 1:
            return "revert takes exactly one argument"
        return ""

    def exec(self, args: List[Any], ctx: Context):
        return args[0][::-1]

    def is_aggregate(self):
        return False


class AggSumFunc(Function):

    def __init__(self):
        pass

    def validate(self, args: List[Any]):
        return ""

    def exec(self, args: List[Any], ctx: Context):
        return sum(args[0])

    def is_aggregate(self):
        return True


class BoomFunc(Function):

    def __init__(self):
        pass

    def validate(self, args: List[Any]):
        return ""

    def exec(self, args: List[Any], ctx: Context):
        raise ValueError("boom: {} in rule {}".format(args, ctx.get_rule_id()))

    def is_aggregate(self):
        return False


class NanFunc(Function):

    def __init__(self):
        pass

    def validate(self, args: List[Any]):
        return ""

    def exec(self, args: List[Any], ctx: Context):
        return float("nan")

    def is_aggregate(self):
        return False


revertIns = RevertFunc()
aggSumIns = AggSumFunc()
boomIns = BoomFunc()
nanIns = NanFunc()
