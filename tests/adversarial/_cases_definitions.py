from ._case import Cases

cases = Cases("definitions")
CASES = cases.all
