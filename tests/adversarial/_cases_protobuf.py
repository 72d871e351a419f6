from ._case import Cases

cases = Cases("protobuf")
CASES = cases.all
